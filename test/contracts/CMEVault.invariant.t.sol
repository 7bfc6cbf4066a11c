// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {CMEVault} from "../../contracts/CMEVault.sol";
import {ICMEVault} from "../../contracts/interfaces/ICMEVault.sol";
import {FeeOnTransferToken} from "../../contracts/mocks/FeeOnTransferToken.sol";
import {MockMemecoin} from "../../contracts/mocks/MockMemecoin.sol";
import {MockUSDC} from "../../contracts/mocks/MockUSDC.sol";
import {Cheats} from "./Cheats.sol";

interface IMintableToken {
    function mint(address to, uint256 amount) external;
    function approve(address spender, uint256 amount) external returns (bool);
    function balanceOf(address account) external view returns (uint256);
}

/// @notice Drives the vault through random deposits (the owners' and an outsider's, up to the
/// 2^112 cap), withdrawals (free, by permit, and while settling), donations, sessions, batches,
/// finalize, void and the guardian's veto, as admin, settler and guardian, and keeps a model of
/// what every balance must be. Some sessions are deliberately wrong (unbalanced or overdrawn) to
/// check the vault refuses to finalize them. Time moves only forward, and the session gap and
/// challenge window are probed from inside before they are waited out.
contract VaultHandler is Cheats {
    uint256 internal constant ACTORS = 4;
    uint256 internal constant TOKENS = 3;
    uint256 internal constant SETTLER_KEY = 0x5E771E5;
    uint256 internal constant MAX_DELTA = uint256(uint112(type(int112).max));
    uint256 internal constant MAX_BALANCE = type(uint112).max;
    address internal constant GUARDIAN = address(0x6A4D);
    address internal constant OUTSIDER = address(0x0B5);

    CMEVault public immutable vault;
    address[TOKENS] public tokens;
    /// @dev actors[ACTORS] is the treasury: a participant that only receives fees.
    address[ACTORS + 1] public participants;

    // the session being settled
    bytes[] internal _batches;
    bytes32[] internal _nexts;
    uint256 internal _posted;
    int256[TOKENS][ACTORS + 1] internal _deltas;
    bool internal _unbalanced;
    bool internal _overdrawn;

    // ghosts: the model the invariants compare with
    mapping(address account => mapping(address token => int256)) public ghostBalance;
    uint256[TOKENS] public ghostDonated;
    bool public ghostOverdraw; // a withdrawal beyond the balance, or a permit replay, succeeded
    bool public ghostBadFinalize; // an unbalanced session finalized, or one leaving a negative balance
    bool public ghostHonestRefused; // a correct, fully posted session failed to finalize
    bool public ghostHonestBatchRefused; // a batch of a session that overdraws nobody was refused
    bool public ghostEarlyVoid; // a session was voided before deadline + grace
    bool public ghostEarlyStart; // a session started inside the gap after the last one ended
    bool public ghostEarlyFinalize; // a session finalized inside its challenge window
    bool public ghostBadVeto; // someone else than the guardian vetoed, or the guardian could not
    bool public ghostBadDeposit; // a deposit refused below the cap, or accepted above it
    bool public ghostFreeTradingWithdrawal; // a withdrawal without permit while trading
    uint256 public finalized;
    uint256 public voided;
    uint256 public vetoed;
    uint256 public settlingWithdrawals;

    constructor() {
        vault = new CMEVault(address(this), 1 hours);
        vault.grantRole(vault.SETTLER_ROLE(), address(this));
        vault.grantRole(vault.GUARDIAN_ROLE(), GUARDIAN);
        vault.grantRole(vault.SETTLER_ROLE(), vm.addr(SETTLER_KEY));
        tokens[0] = address(new MockUSDC());
        tokens[1] = address(new MockMemecoin("Meme", "MEME"));
        tokens[2] = address(new FeeOnTransferToken(50));
        for (uint256 t; t < TOKENS; ++t) vault.listToken(tokens[t]);
        for (uint256 i; i <= ACTORS; ++i) {
            participants[i] = address(uint160(0xA000 + i));
            vault.register(participants[i]);
        }
    }

    // ------------------------------------------------------------ actions

    function deposit(uint256 actorSeed, uint256 tokenSeed, uint256 amount) external {
        address who = participants[actorSeed % ACTORS];
        _depositFrom(who, who, tokens[tokenSeed % TOKENS], bound(amount, 1, 1e30));
    }

    /// @dev An outsider credits any account, in any phase, with amounts up to the cap and beyond:
    /// it must never make a committed batch unpostable (ghostHonestBatchRefused).
    function outsiderDeposit(uint256 actorSeed, uint256 tokenSeed, uint256 amount) external {
        address who = participants[actorSeed % (ACTORS + 1)];
        address token = tokens[tokenSeed % TOKENS];
        uint256 room = MAX_BALANCE - vault.totalBalance(token);
        // mostly near the room left, sometimes just past it
        amount = bound(amount, 1, room + 1e18);
        _depositFrom(OUTSIDER, who, token, amount);
    }

    function _depositFrom(address from, address who, address token, uint256 amount) internal {
        IMintableToken(token).mint(from, amount);
        vm.prank(from);
        IMintableToken(token).approve(address(vault), amount);
        uint256 total = vault.totalBalance(token);
        uint256 held = IMintableToken(token).balanceOf(address(vault));
        vm.prank(from);
        try vault.depositFor(who, token, amount) returns (uint256 credited) {
            if (total + credited > MAX_BALANCE) ghostBadDeposit = true;
            ghostBalance[who][token] += int256(credited);
        } catch (bytes memory reason) {
            // the only refusal: the sum of balances would pass the cap (fee tokens credit less
            // than `amount`, so compare with what would have arrived)
            uint256 arriving = token == tokens[2] ? amount - amount * 50 / 10_000 : amount;
            bytes memory expected =
                abi.encodeWithSelector(ICMEVault.TotalBalanceOverflow.selector, token, total + arriving);
            if (keccak256(reason) != keccak256(expected) || total + arriving <= MAX_BALANCE) ghostBadDeposit = true;
            require(IMintableToken(token).balanceOf(address(vault)) == held, "refused deposit moved tokens");
        }
    }

    /// @dev Without a permit: free between sessions, refused while trading, and while settling up
    /// to `withdrawable` (min(pre, pre + delta) once the delta is posted).
    function withdraw(uint256 actorSeed, uint256 tokenSeed, uint256 amount, bool toOther) external {
        (, ICMEVault.Phase phase) = _current();
        address who = participants[actorSeed % (ACTORS + 1)];
        address token = tokens[tokenSeed % TOKENS];
        if (phase == ICMEVault.Phase.Trading) {
            if (vault.balanceOf(who, token) == 0) return;
            vm.prank(who);
            try vault.withdraw(token, 1) {
                ghostFreeTradingWithdrawal = true;
            } catch {}
            return;
        }
        uint256 available = vault.withdrawable(who, token);
        if (available == 0) {
            vm.prank(who);
            try vault.withdraw(token, 1) {
                ghostOverdraw = true;
            } catch {}
            return;
        }
        amount = bound(amount, 1, available);
        vm.prank(who);
        if (toOther) vault.withdrawTo(token, amount, address(0xD00D));
        else vault.withdraw(token, amount);
        ghostBalance[who][token] -= int256(amount);
        if (phase == ICMEVault.Phase.Settling) ++settlingWithdrawals;
        // nobody withdraws more than they may
        vm.prank(who);
        try vault.withdraw(token, available - amount + 1) {
            ghostOverdraw = true;
        } catch {}
    }

    function withdrawWithPermit(uint256 actorSeed, uint256 tokenSeed, uint256 amount, uint256 nonce) external {
        (uint32 id, ICMEVault.Phase phase) = _current();
        if (phase != ICMEVault.Phase.Trading) return;
        address who = participants[actorSeed % ACTORS];
        address token = tokens[tokenSeed % TOKENS];
        uint256 balance = vault.balanceOf(who, token);
        if (balance == 0 || vault.isPermitUsed(who, nonce)) return;
        amount = bound(amount, 1, balance);
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory signature = _signPermit(who, token, amount, id, nonce, deadline);
        vm.prank(who);
        vault.withdrawWithPermit(token, amount, who, nonce, deadline, signature);
        ghostBalance[who][token] -= int256(amount);
        // a permit is single use
        vm.prank(who);
        try vault.withdrawWithPermit(token, amount, who, nonce, deadline, signature) {
            ghostOverdraw = true;
        } catch {}
    }

    function _signPermit(address who, address token, uint256 amount, uint32 id, uint256 nonce, uint256 deadline)
        internal
        view
        returns (bytes memory)
    {
        (uint8 v, bytes32 r, bytes32 s) =
            vm.sign(SETTLER_KEY, vault.withdrawalDigest(who, token, amount, id, nonce, deadline));
        return abi.encodePacked(r, s, v);
    }

    /// @dev Tokens sent to the vault without a deposit belong to nobody: solvency must still hold.
    function donate(uint256 tokenSeed, uint256 amount) external {
        uint256 t = tokenSeed % TOKENS;
        amount = bound(amount, 1, 1e24);
        IMintableToken(tokens[t]).mint(address(vault), amount);
        ghostDonated[t] += amount;
    }

    /// @dev Probes the session gap from inside (must refuse), then waits it out if `wait`.
    function startSession(bool wait) external {
        (uint32 id, ICMEVault.Phase phase) = _current();
        if (phase == ICMEVault.Phase.Trading || phase == ICMEVault.Phase.Settling) return;
        uint256 opensAt = vault.nextSessionAt();
        if (block.timestamp < opensAt) {
            try vault.startSession(id + 1, uint64(block.timestamp + 1 days)) {
                ghostEarlyStart = true;
                return;
            } catch {}
            if (!wait) return;
            vm.warp(opensAt);
        }
        vault.startSession(id + 1, uint64(block.timestamp + 1 days));
    }

    /// @dev Ends trading with a random zero-sum settlement: per token, some actors pay part of
    /// their balance, one actor and the treasury receive it. `bug` sometimes unbalances a token
    /// or overdraws an actor, as a faulty keeper would.
    function settle(uint256 seed, uint256 batchSize, uint8 bug) external {
        (uint32 id, ICMEVault.Phase phase) = _current();
        if (phase != ICMEVault.Phase.Trading) return;
        delete _batches;
        delete _nexts;
        delete _deltas;
        _posted = 0;
        _unbalanced = bug % 16 == 0;
        _overdrawn = bug % 16 == 1;

        bytes memory all;
        uint256 count;
        for (uint256 t; t < TOKENS; ++t) {
            uint256 paid;
            uint256 receiver = uint256(keccak256(abi.encode(seed, t))) % ACTORS;
            for (uint256 i; i < ACTORS; ++i) {
                if (i == receiver) continue;
                uint256 balance = vault.balanceOf(participants[i], tokens[t]);
                uint256 pay = bound(uint256(keccak256(abi.encode(seed, t, i))), 0, balance < MAX_DELTA ? balance : MAX_DELTA);
                // An entry's delta must fit int112 (the slot's pending field), so the receiver's
                // total stays within it too; the keeper's position limits keep real session
                // deltas far below 2^111.
                if (pay > MAX_DELTA - paid) pay = MAX_DELTA - paid;
                if (_overdrawn && t == 0 && i == (receiver + 1) % ACTORS) pay = balance + 1;
                if (pay == 0) continue;
                paid += pay;
                _deltas[i][t] = -int256(pay);
            }
            uint256 fee = paid / 100;
            _deltas[receiver][t] = int256(paid - fee);
            _deltas[ACTORS][t] = int256(fee) + (_unbalanced && t == 0 ? int256(1) : int256(0));
            for (uint256 i; i <= ACTORS; ++i) {
                if (_deltas[i][t] == 0) continue;
                all = bytes.concat(all, abi.encodePacked(uint32(i + 1), uint8(t), int128(_deltas[i][t])));
                ++count;
            }
        }
        if (count == 0) {
            vault.beginSettlement(id, bytes32(0), 0, bytes32(0));
            return;
        }

        // cut into batches and build the hash onion from the last batch up
        uint256 size = bound(batchSize, 1, count);
        for (uint256 start; start < count; start += size) {
            uint256 end = start + size < count ? start + size : count;
            _batches.push(_slice(all, start * 21, end * 21));
            _nexts.push(bytes32(0));
        }
        bytes32 next;
        for (uint256 b = _batches.length; b > 0; --b) {
            _nexts[b - 1] = next;
            next = keccak256(abi.encode(id, uint32(b - 1), keccak256(_batches[b - 1]), next));
        }
        vault.beginSettlement(id, next, uint32(_batches.length), keccak256(all));
    }

    /// @dev An honest keeper's last step: post what is left, wait out the challenge window, then
    /// finalize.
    function completeSettlement() external {
        (, ICMEVault.Phase phase) = _current();
        if (phase != ICMEVault.Phase.Settling) return;
        while (_posted < _batches.length) {
            uint256 before = _posted;
            this.postBatch();
            if (_posted == before) break; // a refused batch (overdrawn session) stalls settlement
        }
        this.finalize(true);
    }

    function postBatch() external {
        (uint32 id, ICMEVault.Phase phase) = _current();
        if (phase != ICMEVault.Phase.Settling || _posted == _batches.length) return;
        try vault.postBatch(id, uint32(_posted), _batches[_posted], _nexts[_posted]) {
            ++_posted;
        } catch {
            // deposits (anyone's) only add, and withdrawals while settling keep every posted
            // balance non-negative and touch no unposted one: only an overdrawn plan, or one that
            // does not net to zero (its credits are not bounded by the sum of balances, so near
            // the cap one may overflow), is refused
            if (!_overdrawn && !_unbalanced) ghostHonestBatchRefused = true;
        }
    }

    /// @dev Probes the challenge window from inside (must refuse), then waits it out if `wait`.
    function finalize(bool wait) external {
        (uint32 id, ICMEVault.Phase phase) = _current();
        if (phase != ICMEVault.Phase.Settling) return;
        uint256 finalizableAt = vault.session(id).finalizableAt;
        if (_posted == _batches.length && block.timestamp < finalizableAt) {
            try vault.finalize(id) {
                ghostEarlyFinalize = true;
                return;
            } catch {}
            if (!wait) return;
            vm.warp(finalizableAt);
        }
        try vault.finalize(id) {
            // An overdrawn delta may legitimately pass if a deposit arrived before its batch was
            // posted; what must never happen is a finalized session that does not net to zero or
            // leaves a balance below zero.
            if (_unbalanced) ghostBadFinalize = true;
            for (uint256 i; i <= ACTORS; ++i) {
                for (uint256 t; t < TOKENS; ++t) {
                    int256 next = ghostBalance[participants[i]][tokens[t]] + _deltas[i][t];
                    if (next < 0) ghostBadFinalize = true;
                    ghostBalance[participants[i]][tokens[t]] = next;
                }
            }
            ++finalized;
        } catch {
            // a balanced session whose batches were all accepted must finalize
            if (!_unbalanced && _posted == _batches.length) ghostHonestRefused = true;
        }
    }

    /// @dev The guardian's veto, at any point of trading or settling; nobody else's works.
    function veto(bool asSettler) external {
        (uint32 id, ICMEVault.Phase phase) = _current();
        if (phase != ICMEVault.Phase.Trading && phase != ICMEVault.Phase.Settling) return;
        if (asSettler) {
            try vault.vetoSession(id, "not mine to veto") {
                ghostBadVeto = true;
            } catch {}
            return;
        }
        vm.prank(GUARDIAN);
        try vault.vetoSession(id, "fill log mismatch") {
            ++vetoed;
        } catch {
            ghostBadVeto = true;
        }
    }

    function voidSession(uint256 wait) external {
        (uint32 id, ICMEVault.Phase phase) = _current();
        if (phase != ICMEVault.Phase.Trading && phase != ICMEVault.Phase.Settling) return;
        uint256 voidableAt = vault.session(id).deadline + vault.gracePeriod();
        vm.warp(block.timestamp + bound(wait, 0, 2 days));
        try vault.voidSession(id) {
            if (block.timestamp < voidableAt) ghostEarlyVoid = true;
            ++voided;
        } catch {}
    }

    // ------------------------------------------------------------ views for the invariants

    function participantCount() external pure returns (uint256) {
        return ACTORS + 1;
    }

    function tokenCount() external pure returns (uint256) {
        return TOKENS;
    }

    // ------------------------------------------------------------ internal

    function _current() internal view returns (uint32 id, ICMEVault.Phase phase) {
        id = vault.currentSessionId();
        phase = vault.session(id).phase;
    }

    function _slice(bytes memory data, uint256 from, uint256 to) internal pure returns (bytes memory out) {
        out = new bytes(to - from);
        for (uint256 i; i < out.length; ++i) out[i] = data[from + i];
    }
}

/// @notice Invariants of the vault under the handler's random operations.
contract CMEVaultInvariantTest {
    VaultHandler internal handler;
    CMEVault internal vault;

    function setUp() public {
        handler = new VaultHandler();
        vault = handler.vault();
    }

    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    /// @notice Solvency: the vault holds at least what every account can withdraw (exactly that
    /// plus donations, since deposits credit what arrived and withdrawals debit what left), and
    /// its total-balance counter is that sum, within the 2^112 cap.
    /// forge-config: default.invariant.runs = 48
    /// forge-config: default.invariant.depth = 60
    function invariant_solvency() public view {
        for (uint256 t; t < handler.tokenCount(); ++t) {
            address token = handler.tokens(t);
            uint256 owed;
            for (uint256 i; i < handler.participantCount(); ++i) owed += vault.balanceOf(handler.participants(i), token);
            uint256 held = IMintableToken(token).balanceOf(address(vault));
            require(held >= owed, "insolvent");
            require(held == owed + handler.ghostDonated(t), "accounting drift");
            require(vault.totalBalance(token) == owed, "total balance drift");
            require(owed <= type(uint112).max, "total above the cap");
        }
        require(!handler.ghostBadDeposit(), "deposit cap misapplied");
    }

    /// @notice Every balance is what deposits, withdrawals and finalized sessions made it, and
    /// never negative, including a pending delta that finalize would fold in.
    /// forge-config: default.invariant.runs = 48
    /// forge-config: default.invariant.depth = 60
    function invariant_balancesFollowTheModel() public view {
        for (uint256 i; i < handler.participantCount(); ++i) {
            address who = handler.participants(i);
            for (uint256 t; t < handler.tokenCount(); ++t) {
                address token = handler.tokens(t);
                int256 model = handler.ghostBalance(who, token);
                require(model >= 0, "model went negative");
                require(vault.balanceOf(who, token) == uint256(model), "balance differs from model");
                (uint256 settled, int256 pending, uint32 session) = vault.slotOf(who, token);
                ICMEVault.Phase phase = vault.session(session).phase;
                if (phase == ICMEVault.Phase.Settling || phase == ICMEVault.Phase.Finalized) {
                    require(int256(settled) + pending >= 0, "negative balance pending");
                }
            }
        }
    }

    /// @notice Nobody withdraws more than they may (their balance, or while settling what they
    /// own whichever way the session ends), nobody withdraws without a permit while trading, and
    /// no permit works twice.
    /// forge-config: default.invariant.runs = 48
    /// forge-config: default.invariant.depth = 60
    function invariant_noOverdraw() public view {
        require(!handler.ghostOverdraw(), "overdraw");
        require(!handler.ghostFreeTradingWithdrawal(), "withdrawal without permit while trading");
    }

    /// @notice The clocks and the veto: no session starts inside the gap after the last one
    /// ended, none finalizes inside its challenge window, only the guardian vetoes, and its veto
    /// always works before finalize; no committed batch of a plan that overdraws nobody is ever
    /// refused, whatever was deposited or withdrawn meanwhile.
    /// forge-config: default.invariant.runs = 48
    /// forge-config: default.invariant.depth = 60
    function invariant_clocksVetoAndPostability() public view {
        require(!handler.ghostEarlyStart(), "started inside the gap");
        require(!handler.ghostEarlyFinalize(), "finalized inside the challenge window");
        require(!handler.ghostBadVeto(), "veto misapplied");
        require(!handler.ghostHonestBatchRefused(), "committed batch refused");
        uint32 id = vault.currentSessionId();
        ICMEVault.Phase phase = vault.session(id).phase;
        if (phase == ICMEVault.Phase.Finalized || phase == ICMEVault.Phase.Voided) {
            require(vault.nextSessionAt() >= vault.sessionGap(), "no gap after the last session");
        }
    }

    /// @notice Finalized sessions net to zero: unbalanced or overdrawn settlements never finalize,
    /// correct ones always do, and voiding waits for deadline + grace.
    /// forge-config: default.invariant.runs = 48
    /// forge-config: default.invariant.depth = 60
    function invariant_sessionsSettleCorrectly() public view {
        require(!handler.ghostBadFinalize(), "bad session finalized");
        require(!handler.ghostHonestRefused(), "correct session refused");
        require(!handler.ghostEarlyVoid(), "voided early");
        uint32 id = vault.currentSessionId();
        if (vault.session(id).phase == ICMEVault.Phase.Finalized) {
            for (uint256 t; t < handler.tokenCount(); ++t) {
                require(vault.sessionNet(id, handler.tokens(t)) == 0, "finalized net not zero");
            }
        }
    }
}
