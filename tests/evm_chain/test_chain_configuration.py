"""Chains are configured adapters: PGP_CHAINS names each chain's adapter class and configuration,
two EVM chains are two entries of one class, each adapter is built once per process, and its
secrets are named (environment variables), never written in the settings."""

from decimal import Decimal

import pytest
from django.test import override_settings

from evm_chain.adapter import EvmChain
from payouts.host_payments.ports import chain_adapter, configured_chains
from pgp_project.error_reports import configured_secrets

SECOND_KEY = "0x" + "5c" * 32


def two_evm_chains(settings_chains: dict) -> dict:
    second = {
        **settings_chains["eth"],
        "chain_id": 31338,
        "rpc_url_env": "PGP_TEST_SECOND_RPC_URL",
        "confirmations": 7,
        "max_fee_gwei": 3,
        "keyring": {"current_env": "PGP_TEST_SECOND_KEY"},
        "tokens": {"usdt": {"contract": "0x" + "11" * 20}},
    }
    return {**settings_chains, "l2": second}


def test_two_evm_chains_are_two_configured_instances_of_one_adapter(settings, monkeypatch) -> None:
    monkeypatch.setenv("HOT_WALLET_PRIVATE_KEY", "0x" + "4b" * 32)
    monkeypatch.setenv("PGP_TEST_SECOND_KEY", SECOND_KEY)
    settings.PGP_CHAINS = two_evm_chains(settings.PGP_CHAINS)
    first, second = chain_adapter("eth"), chain_adapter("l2")
    assert configured_chains() == ["eth", "l2"]
    assert type(first) is type(second) is EvmChain
    assert chain_adapter("l2") is second  # built once per process
    assert (second.chain_id, second.confirmations_required, second.max_fee_cap_wei) == (31338, 7, 3 * 10**9)
    assert first.confirmations_required == settings.PGP_CHAINS["eth"]["confirmations"]
    assert second.token_contract("usdt") == "0x" + "11" * 20
    # Each chain's key comes from the variable its entry names, read at use.
    assert second.hot_wallet_address() != first.hot_wallet_address()
    monkeypatch.setenv("PGP_TEST_SECOND_KEY", "0x" + "6d" * 32)
    assert second.hot_wallet_address() != first.hot_wallet_address()
    with pytest.raises(LookupError):
        chain_adapter("sol")


def test_a_key_named_by_a_chains_configuration_is_hidden_from_error_reports(settings, monkeypatch) -> None:
    monkeypatch.setenv("PGP_TEST_SECOND_KEY", SECOND_KEY)
    settings.PGP_CHAINS = two_evm_chains(settings.PGP_CHAINS)
    assert SECOND_KEY.removeprefix("0x") in configured_secrets()
    assert SECOND_KEY not in str(settings.PGP_CHAINS)  # named in the settings, never written there


def test_fees_are_shown_by_the_chains_adapter(settings) -> None:
    adapter = chain_adapter("eth")
    assert adapter.format_fee_rate(Decimal(1_500_000_000)) == "1.5 gwei"
    assert adapter.format_fee_rate(Decimal(30 * 10**9)) == "30 gwei"
    assert adapter.format_fee_rate(Decimal(1)) == "0.000000001 gwei"
    assert adapter.format_network_fee(21_000 * 10**9) == "0.000021 ETH (21000 gwei)"
    assert adapter.format_network_fee(None) == "-"


def test_a_missing_chain_entry_is_refused_by_name() -> None:
    with override_settings(PGP_CHAINS={}), pytest.raises(LookupError, match="not configured in PGP_CHAINS"):
        chain_adapter("eth")
