"""Best-quote routing benchmark: what routing across exchange providers saves against sending
every batch to one provider, over 200 batches with randomised quotes.

    createdb -h 127.0.0.1 -U postgres pgp_bench_routing
    .venv/bin/python benchmarks/exchange_routing.py --database-url postgres://postgres@127.0.0.1:5432/pgp_bench_routing

It migrates the named database (routing books every call on its provider's health there: give it
its own), starts anvil with the test USDT, the ChangeNOW sandbox and the LetsExchange sandbox on
loopback, and enables both in PGP_EXCHANGES. Then, for each batch, it draws a market: each
provider's fee (ChangeNOW 0.3-0.9 %; LetsExchange 0.2-1.0 % plus a 0-3 USD withdrawal fee),
and an amount (a conversion of 0.01-3 ETH into USDT, or, one batch in four, a client payout of
30-3,000 USDT into ETH), both log-uniform, from a seeded generator. The product's own
`routing.quote_route` asks both sandboxes over HTTP; the batch goes to the best net quote, and the
single-provider figure is what ChangeNOW quoted for the same batch. Savings are summed in USDT
(a payout's ETH at the sandboxes' 3,000 USD per ETH) and given in basis points of the
single-provider amount. Prints one JSON object: totals, per-batch median and p95 saving, how many
batches each provider won, quote latency, and the load average.
"""

import argparse
import json
import logging
import math
import os
import random
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

ETH_USD = Decimal("3000")
CHANGENOW_KEY = "bench-changenow-key"
LETSEXCHANGE_KEY = "bench-letsexchange-key"


def log_uniform(rng: random.Random, low: float, high: float, places: int) -> Decimal:
    value = math.exp(rng.uniform(math.log(low), math.log(high)))
    return Decimal(str(round(value, places)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--seed", type=int, default=19)
    args = parser.parse_args()

    os.environ.update(
        DJANGO_SETTINGS_MODULE="pgp_project.settings.test",
        DATABASE_URL=args.database_url,
        CHANGENOW_API_KEY=CHANGENOW_KEY,
        LETSEXCHANGE_API_KEY=LETSEXCHANGE_KEY,
    )
    import django

    django.setup()
    from django.core.management import call_command
    from django.test.utils import override_settings

    from integrations.assets import ETH, USDT_ERC20
    from integrations.exchange import routing
    from integrations.exchange.port import ExchangePair
    from pgp_project.operations.models import OutsideServiceHealth
    from standins.localchain import deploy_local_chain, free_port, start_anvil, stop_anvil
    from standins.sandbox_changenow import SandboxChangeNow, SandboxConfig
    from standins.sandbox_letsexchange import LetsExchangeSandboxConfig, SandboxLetsExchange

    logging.getLogger("standins").setLevel(logging.WARNING)  # one line per sandbox request otherwise
    call_command("migrate", verbosity=0)
    OutsideServiceHealth.objects.all().delete()
    port = free_port()
    anvil = start_anvil(port, block_time=1)
    chain = deploy_local_chain(f"http://127.0.0.1:{port}")
    changenow = SandboxChangeNow(
        SandboxConfig(
            rpc_url=chain.rpc_url,
            usdt_address=chain.usdt_address,
            treasury_private_key=chain.treasury_private_key,
            api_key=CHANGENOW_KEY,
        )
    )
    letsexchange = SandboxLetsExchange(
        LetsExchangeSandboxConfig(
            rpc_url=chain.rpc_url,
            usdt_address=chain.usdt_address,
            treasury_private_key=chain.second_treasury_private_key,
            api_key=LETSEXCHANGE_KEY,
        )
    )
    changenow.start()
    letsexchange.start()
    from django.conf import settings

    exchanges = {
        **settings.PGP_EXCHANGES,
        "changenow": {**settings.PGP_EXCHANGES["changenow"], "url": changenow.base_url, "enabled": True},
        "letsexchange": {**settings.PGP_EXCHANGES["letsexchange"], "url": letsexchange.api_url, "enabled": True},
    }
    rng = random.Random(args.seed)  # noqa: S311 - a reproducible market, not a secret
    conversion, payout = ExchangePair(ETH, USDT_ERC20), ExchangePair(USDT_ERC20, ETH)
    won: dict[str, int] = {}
    saved_bps: list[Decimal] = []
    latencies: list[float] = []
    single_total = routed_total = Decimal(0)
    try:
        with override_settings(PGP_EXCHANGES=exchanges):
            for _ in range(args.batches):
                changenow.set_prices(fee_percent=Decimal(str(round(rng.uniform(0.3, 0.9), 2))))
                letsexchange.set_prices(
                    fee_percent=Decimal(str(round(rng.uniform(0.2, 1.0), 2))),
                    withdrawal_fee_usd=Decimal(str(round(rng.uniform(0, 3), 2))),
                )
                is_payout = rng.random() < 0.25
                pair = payout if is_payout else conversion
                amount = log_uniform(rng, 30, 3000, 2) if is_payout else log_uniform(rng, 0.01, 3, 4)
                started = time.perf_counter()
                route = routing.quote_route(pair, amount)
                latencies.append(time.perf_counter() - started)
                best = route.quoted[0]
                single = next(q for q in route.quotes if q.provider == "changenow")
                assert best.to_amount is not None
                assert single.to_amount is not None, single.problem
                in_usdt = ETH_USD if is_payout else Decimal(1)
                won[best.provider] = won.get(best.provider, 0) + 1
                single_total += single.to_amount * in_usdt
                routed_total += best.to_amount * in_usdt
                saved_bps.append((best.to_amount - single.to_amount) / single.to_amount * 10_000)
    finally:
        changenow.stop()
        letsexchange.stop()
        stop_anvil(anvil)

    saved = routed_total - single_total
    latencies.sort()
    print(
        json.dumps(
            {
                "batches": args.batches,
                "seed": args.seed,
                "won_by": dict(sorted(won.items())),
                "single_provider_usdt": str(single_total.quantize(Decimal("0.01"))),
                "routed_usdt": str(routed_total.quantize(Decimal("0.01"))),
                "saved_usdt": str(saved.quantize(Decimal("0.01"))),
                "saved_bps_of_volume": str((saved / single_total * 10_000).quantize(Decimal("0.01"))),
                "saved_bps_per_batch_median": str(statistics.median(saved_bps).quantize(Decimal("0.01"))),
                "saved_bps_per_batch_p95": str(
                    sorted(saved_bps)[int(0.95 * (len(saved_bps) - 1))].quantize(Decimal("0.01"))
                ),
                "quote_latency_ms_p50": round(latencies[len(latencies) // 2] * 1000, 1),
                "quote_latency_ms_p95": round(latencies[int(0.95 * (len(latencies) - 1))] * 1000, 1),
                "loadavg": os.getloadavg(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
