// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title Gas-hungry wallet
/// @notice A contract wallet that does work when it receives ETH (it books every deposit), so a
///         plain 21,000-gas transfer to it runs out of gas. Local tests only.
contract GasHungryWallet {
    uint256 public received;
    uint256 public deposits;

    receive() external payable {
        received += msg.value;
        deposits += 1;
    }
}
