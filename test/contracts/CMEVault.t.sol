// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {CMEVault} from "../../contracts/CMEVault.sol";
import {ICMEVault} from "../../contracts/interfaces/ICMEVault.sol";
import {MockMemecoin} from "../../contracts/mocks/MockMemecoin.sol";
import {Cheats} from "./Cheats.sol";

/// @notice Fuzz tests of the vault's settlement arithmetic through its external functions: range
/// checks on posted deltas, the lazy fold at finalize, voiding and vetoing, the total-balance cap
/// that keeps committed batches postable, withdrawals while settling, and the vault's clocks.
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
    address internal guardian = address(0x6A4D);
    address internal outsider = address(0x0B5);

    function setUp() public {
        vault = new CMEVault(address(this), 1 hours);
        vault.grantRole(vault.SETTLER_ROLE(), address(this));
        vault.grantRole(vault.GUARDIAN_ROLE(), guardian);
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

    /// @dev Starts the next session (once the session gap allows) and commits `entries` as its
    /// single batch.
    function _settleOne(bytes memory entries) internal returns (uint32 id) {
        if (block.timestamp < vault.nextSessionAt()) vm.warp(vault.nextSessionAt());
        id = vault.currentSessionId() + 1;
        vault.startSession(id, uint64(block.timestamp + 1 days));
        bytes32 root = keccak256(abi.encode(id, uint32(0), keccak256(entries), bytes32(0)));
        vault.beginSettlement(id, root, 1, bytes32(0));
    }

    /// @dev Finalizes once the challenge window has passed.
    function _finalize(uint32 id) internal {
        vm.warp(vault.session(id).finalizableAt);
        vault.finalize(id);
    }

    function _depositFor(address who, uint256 amount) internal returns (bool accepted) {
        meme.mint(outsider, amount);
        vm.prank(outsider);
        meme.approve(address(vault), amount);
        vm.prank(outsider);
        try vault.depositFor(who, address(meme), amount) {
            return true;
        } catch (bytes memory reason) {
            bytes memory expected = abi.encodeWithSelector(
                ICMEVault.TotalBalanceOverflow.selector, address(meme), vault.totalBalance(address(meme)) + amount
            );
            require(keccak256(reason) == keccak256(expected), "deposit refused for another reason");
            return false;
        }
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
        _finalize(id);
        require(vault.balanceOf(alice, address(meme)) == a - x, "alice");
        require(vault.balanceOf(bob, address(meme)) == b + x, "bob");

        // a second session folds the first lazily: move y back
        uint256 y = (b + x) / 3;
        entries = bytes.concat(_entry(BOB, -int256(y)), _entry(ALICE, int256(y)));
        id = _settleOne(entries);
        vault.postBatch(id, 0, entries, bytes32(0));
        _finalize(id);
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

    /// @notice No outsider can block settlement: whatever anyone deposits into the credited
    /// account, before or after the commit, a committed credit stays postable. A deposit is refused
    /// iff the sum of all balances would exceed 2^112 - 1, and then only with TotalBalanceOverflow.
    function testFuzz_committedCreditStaysPostable(uint256 a, uint256 credit, uint256 before, uint256 afterwards)
        public
    {
        a = bound(a, 1, MAX_BALANCE);
        credit = bound(credit, 1, a < MAX_DELTA ? a : MAX_DELTA);
        before = bound(before, 1, MAX_BALANCE);
        afterwards = bound(afterwards, 1, MAX_BALANCE);
        _deposit(alice, a);
        bool beforeAccepted = _depositFor(bob, before);
        require(beforeAccepted == (a + before <= MAX_BALANCE), "cap before the commit");
        bytes memory entries = bytes.concat(_entry(ALICE, -int256(credit)), _entry(BOB, int256(credit)));
        uint32 id = _settleOne(entries);
        uint256 total = vault.totalBalance(address(meme));
        bool afterAccepted = _depositFor(bob, afterwards);
        require(afterAccepted == (total + afterwards <= MAX_BALANCE), "cap after the commit");

        vault.postBatch(id, 0, entries, bytes32(0)); // never reverts
        _finalize(id);
        uint256 bobBefore = beforeAccepted ? before : 0;
        uint256 bobAfter = afterAccepted ? afterwards : 0;
        require(vault.balanceOf(bob, address(meme)) == bobBefore + bobAfter + credit, "bob");
        require(vault.totalBalance(address(meme)) <= MAX_BALANCE, "total above the cap");
    }

    /// @notice While settling, an account whose delta is posted withdraws at most
    /// min(pre, pre + delta) without the keeper; finalize and void both stay solvent and leave it
    /// exactly what it owns.
    function testFuzz_withdrawWhileSettling(uint256 a, uint256 b, int256 delta, uint256 take, bool voided) public {
        a = bound(a, 1, MAX_BALANCE / 4);
        b = bound(b, 1, MAX_BALANCE / 4);
        delta = int256(bound(uint256(delta), 0, 2 * (a < b ? a : b))) - int256(a < b ? a : b); // |delta| <= min(a, b)
        _deposit(alice, a);
        _deposit(bob, b);
        bytes memory entries = bytes.concat(_entry(ALICE, delta), _entry(BOB, -delta));
        uint32 id = _settleOne(entries);
        // nothing posted yet: alice's delta may still come, so no withdrawal
        vm.prank(alice);
        try vault.withdraw(address(meme), 1) {
            revert("withdrew before her delta was posted");
        } catch {}
        vault.postBatch(id, 0, entries, bytes32(0));

        uint256 safe = delta < 0 ? a - uint256(-delta) : a;
        require(vault.withdrawable(alice, address(meme)) == safe, "withdrawable");
        take = bound(take, 0, safe + 1);
        vm.prank(alice);
        try vault.withdraw(address(meme), take) {
            require(take >= 1 && take <= safe, "took more than is safe");
        } catch {
            require(take == 0 || take > safe, "refused a safe amount");
            take = 0;
        }
        if (voided) {
            vm.prank(guardian);
            vault.vetoSession(id, "fill log mismatch");
            require(vault.balanceOf(alice, address(meme)) == a - take, "alice after the veto");
            require(vault.balanceOf(bob, address(meme)) == b, "bob after the veto");
        } else {
            _finalize(id);
            require(int256(vault.balanceOf(alice, address(meme))) == int256(a) + delta - int256(take), "alice");
            require(int256(vault.balanceOf(bob, address(meme))) == int256(b) - delta, "bob");
        }
        _withdrawAll(alice);
        _withdrawAll(bob);
        require(meme.balanceOf(address(vault)) == 0, "vault not empty");
        require(vault.totalBalance(address(meme)) == 0, "total not zero");
    }

    /// @notice After every finalize or void, no session starts before the gap has passed, and
    /// one starts as soon as it has.
    function testFuzz_sessionGap(uint256 wait, bool veto) public {
        wait = bound(wait, 0, 2 * vault.sessionGap());
        uint32 id = _settleOne(_entry(ALICE, 0));
        vault.postBatch(id, 0, _entry(ALICE, 0), bytes32(0));
        if (veto) {
            vm.prank(guardian);
            vault.vetoSession(id, "");
        } else {
            _finalize(id);
        }
        uint256 opensAt = block.timestamp + vault.sessionGap();
        require(vault.nextSessionAt() == opensAt, "nextSessionAt");
        vm.warp(block.timestamp + wait);
        try vault.startSession(id + 1, uint64(block.timestamp + 1 days)) {
            require(block.timestamp >= opensAt, "started inside the gap");
        } catch (bytes memory reason) {
            require(block.timestamp < opensAt, "refused after the gap");
            require(
                keccak256(reason) == keccak256(abi.encodeWithSelector(ICMEVault.SessionGapNotOver.selector, opensAt)),
                "wrong refusal"
            );
        }
    }

    /// @notice finalize waits out the challenge window after the last batch.
    function testFuzz_challengeWindow(uint256 wait) public {
        wait = bound(wait, 0, 2 * vault.challengeWindow());
        bytes memory entries = _entry(ALICE, 0);
        uint32 id = _settleOne(entries);
        vault.postBatch(id, 0, entries, bytes32(0));
        uint256 finalizableAt = block.timestamp + vault.challengeWindow();
        require(vault.session(id).finalizableAt == finalizableAt, "finalizableAt");
        vm.warp(block.timestamp + wait);
        try vault.finalize(id) {
            require(block.timestamp >= finalizableAt, "finalized inside the window");
        } catch (bytes memory reason) {
            require(block.timestamp < finalizableAt, "refused after the window");
            bytes memory expected =
                abi.encodeWithSelector(ICMEVault.ChallengeWindowNotOver.selector, id, finalizableAt);
            require(keccak256(reason) == keccak256(expected), "wrong refusal");
        }
    }

    function _withdrawAll(address who) internal {
        uint256 balance = vault.balanceOf(who, address(meme));
        if (balance == 0) return;
        vm.prank(who);
        vault.withdraw(address(meme), balance);
    }
}
