// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {CMEVault} from "../../contracts/CMEVault.sol";
import {ICMEVault} from "../../contracts/interfaces/ICMEVault.sol";
import {MockMemecoin} from "../../contracts/mocks/MockMemecoin.sol";
import {Cheats} from "./Cheats.sol";

/// @notice Fuzz tests of the vault's settlement arithmetic through its external functions: range
/// checks on posted deltas, the lazy fold at finalize, voiding, and the deposit ceiling.
contract CMEVaultFuzzTest is Cheats {
    uint256 internal constant MAX_BALANCE = type(uint112).max;
    uint256 internal constant MAX_DELTA = uint256(uint112(type(int112).max));
    uint32 internal constant ALICE = 2;
    uint32 internal constant BOB = 3;

    CMEVault internal vault;
    MockMemecoin internal meme;
    address internal alice = address(0xA11CE);
    address internal bob = address(0xB0B);
    address internal treasury = address(0x7EA);

    function setUp() public {
        vault = new CMEVault(address(this), 1 hours);
        vault.grantRole(vault.SETTLER_ROLE(), address(this));
        meme = new MockMemecoin("Meme", "MEME");
        vault.listToken(address(meme));
        vault.register(treasury); // id 1
        vault.register(alice); // id 2
        vault.register(bob); // id 3
    }

    function _deposit(address who, uint256 amount) internal {
        if (amount == 0) return;
        meme.mint(who, amount);
        vm.prank(who);
        meme.approve(address(vault), amount);
        vm.prank(who);
        vault.deposit(address(meme), amount);
    }

    function _entry(uint32 accountId, int256 delta) internal pure returns (bytes memory) {
        return abi.encodePacked(accountId, uint8(0), int128(delta));
    }

    /// @dev Starts the next session and commits `entries` as its single batch.
    function _settleOne(bytes memory entries) internal returns (uint32 id) {
        id = vault.currentSessionId() + 1;
        vault.startSession(id, uint64(block.timestamp + 1 days));
        bytes32 root = keccak256(abi.encode(id, uint32(0), keccak256(entries), bytes32(0)));
        vault.beginSettlement(id, root, 1, bytes32(0));
    }

    /// @notice postBatch accepts a delta iff it fits int112 and settled + delta is in
    /// [0, 2^112 - 1], and then stores exactly (settled, delta, session).
    function testFuzz_postBatchRangeChecks(uint256 deposit, int128 delta) public {
        deposit = bound(deposit, 0, MAX_BALANCE);
        _deposit(alice, deposit);
        bytes memory entries = _entry(ALICE, delta);
        uint32 id = _settleOne(entries);

        bytes memory expected;
        int256 result = int256(deposit) + delta;
        if (delta < type(int112).min || delta > type(int112).max) {
            expected = abi.encodeWithSelector(ICMEVault.DeltaOutOfRange.selector, uint256(ALICE), uint8(0), int256(delta));
        } else if (result < 0) {
            expected = abi.encodeWithSelector(ICMEVault.NegativeBalance.selector, uint256(ALICE), uint8(0), result);
        } else if (uint256(result) > MAX_BALANCE) {
            expected = abi.encodeWithSelector(ICMEVault.BalanceOverflow.selector, uint256(ALICE), uint8(0), uint256(result));
        }
        try vault.postBatch(id, 0, entries, bytes32(0)) {
            require(expected.length == 0, "accepted a delta out of range");
            (uint256 settled, int256 pending, uint32 session) = vault.slotOf(alice, address(meme));
            require(settled == deposit && pending == delta && session == id, "slot");
            require(vault.balanceOf(alice, address(meme)) == deposit, "visible before finalize");
            require(vault.sessionNet(id, address(meme)) == delta, "net");
        } catch (bytes memory reason) {
            require(keccak256(reason) == keccak256(expected), "wrong refusal");
        }
    }

    /// @notice A transfer of x from alice to bob settles to exactly a - x and b + x, and both can
    /// then withdraw everything: the vault ends empty.
    function testFuzz_finalizeFoldsExactly(uint256 a, uint256 b, uint256 x) public {
        a = bound(a, 1, MAX_BALANCE / 2);
        b = bound(b, 0, MAX_BALANCE / 2);
        x = bound(x, 0, a);
        _deposit(alice, a);
        _deposit(bob, b);
        bytes memory entries = bytes.concat(_entry(ALICE, -int256(x)), _entry(BOB, int256(x)));
        uint32 id = _settleOne(entries);
        vault.postBatch(id, 0, entries, bytes32(0));
        vault.finalize(id);
        require(vault.balanceOf(alice, address(meme)) == a - x, "alice");
        require(vault.balanceOf(bob, address(meme)) == b + x, "bob");

        // a second session folds the first lazily: move y back
        uint256 y = (b + x) / 3;
        entries = bytes.concat(_entry(BOB, -int256(y)), _entry(ALICE, int256(y)));
        id = _settleOne(entries);
        vault.postBatch(id, 0, entries, bytes32(0));
        vault.finalize(id);
        (uint256 settled,,) = vault.slotOf(alice, address(meme));
        require(settled == a - x, "folded at post time");
        require(vault.balanceOf(alice, address(meme)) == a - x + y, "alice after 2");

        _withdrawAll(alice);
        _withdrawAll(bob);
        require(meme.balanceOf(address(vault)) == 0, "vault not empty");
        require(meme.balanceOf(alice) + meme.balanceOf(bob) == a + b, "conservation");
    }

    /// @notice Voiding drops every posted delta: pre-session balances come back.
    function testFuzz_voidRestoresPreSessionBalances(uint256 a, uint256 x) public {
        a = bound(a, 1, MAX_BALANCE);
        x = bound(x, 0, a < MAX_DELTA ? a : MAX_DELTA);
        _deposit(alice, a);
        bytes memory entries = bytes.concat(_entry(ALICE, -int256(x)), _entry(BOB, int256(x)));
        uint32 id = _settleOne(entries);
        vault.postBatch(id, 0, entries, bytes32(0));
        vm.warp(block.timestamp + 1 days + 1 hours);
        vault.voidSession(id);
        require(vault.balanceOf(alice, address(meme)) == a, "alice keeps her balance");
        require(vault.balanceOf(bob, address(meme)) == 0, "bob gets nothing");
        _withdrawAll(alice);
        require(meme.balanceOf(alice) == a, "alice withdrew");
    }

    /// @notice While a credit is pending, a deposit is refused iff settled + deposit + credit
    /// would exceed 2^112 - 1 (the fold at finalize must fit).
    function testFuzz_depositCeilingCountsPendingCredit(uint256 a, uint256 credit, uint256 more) public {
        a = bound(a, 1, MAX_BALANCE);
        credit = bound(credit, 0, a < MAX_DELTA ? a : MAX_DELTA);
        more = bound(more, 1, MAX_BALANCE);
        _deposit(alice, a);
        bytes memory entries = bytes.concat(_entry(ALICE, -int256(credit)), _entry(BOB, int256(credit)));
        uint32 id = _settleOne(entries);
        vault.postBatch(id, 0, entries, bytes32(0));

        meme.mint(address(this), more);
        meme.approve(address(vault), more);
        try vault.depositFor(bob, address(meme), more) {
            require(more + credit <= MAX_BALANCE, "accepted above the ceiling");
        } catch (bytes memory reason) {
            require(more + credit > MAX_BALANCE, "refused below the ceiling");
            bytes memory expected =
                abi.encodeWithSelector(ICMEVault.BalanceOverflow.selector, uint256(BOB), uint8(0), more + credit);
            require(keccak256(reason) == keccak256(expected), "wrong refusal");
            return;
        }
        vault.finalize(id);
        require(vault.balanceOf(bob, address(meme)) == more + credit, "bob");
    }

    function _withdrawAll(address who) internal {
        uint256 balance = vault.balanceOf(who, address(meme));
        if (balance == 0) return;
        vm.prank(who);
        vault.withdraw(address(meme), balance);
    }
}
