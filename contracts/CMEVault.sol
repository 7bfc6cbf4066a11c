// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Metadata} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Metadata.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {ICMEVault} from "./interfaces/ICMEVault.sol";
import {LazyBalance} from "./libraries/LazyBalance.sol";
import {SettlementEntries} from "./libraries/SettlementEntries.sol";

/// @title CME vault
/// @notice See {ICMEVault}. The settlement path (`postBatch`) is the only gas-critical code: per
/// entry it addresses the balance slot without hashing, does one SLOAD and one SSTORE, and keeps
/// per-token nets in memory until the end of the batch (one SSTORE per token per batch, to a word
/// `listToken` already made non-zero, so a batch never pays a first write besides its entries').
contract CMEVault is ICMEVault, AccessControl, Pausable, ReentrancyGuardTransient, EIP712 {
    using SafeERC20 for IERC20;

    // ---------------------------------------------------------------- constants

    /// @notice Runs sessions: starts them, commits and posts settlement batches, finalizes, and
    /// signs withdrawal permits.
    bytes32 public constant SETTLER_ROLE = keccak256("SETTLER_ROLE");

    /// @notice Vetoes (voids) sessions before they are finalized: an auditors' multisig, apart
    /// from the admin and the settler.
    bytes32 public constant GUARDIAN_ROLE = keccak256("GUARDIAN_ROLE");

    bytes32 public constant WITHDRAWAL_TYPEHASH = keccak256(
        "Withdrawal(address account,address token,uint256 amount,uint32 sessionId,uint256 nonce,uint256 deadline)"
    );

    /// @notice Token indexes are uint8 and `tokenCount` must fit uint8.
    uint8 public constant MAX_TOKENS = type(uint8).max;

    /// @notice Bounds on how long funds can wait for a session: a settler cannot set a far
    /// deadline, nor an admin a long grace period, to keep users from voiding.
    uint64 public constant MAX_SESSION_LENGTH = 30 days;
    uint64 public constant MAX_GRACE_PERIOD = 30 days;

    /// @notice Shortest withdrawal window between sessions. Ten minutes is some 50 Ethereum
    /// blocks: time for a user who watches for the session's end to get a withdrawal included
    /// with a fee bump or two, while the pit's own pre-session (30 minutes by default) usually
    /// covers it anyway. Without a floor a settler could start the next session in the block
    /// after finalize and keep funds in play indefinitely.
    uint64 public constant MIN_SESSION_GAP = 10 minutes;

    /// @notice Bounds on the challenge window. The floor gives the guardian's monitor time to
    /// recompute the deltas from the published fill log (seconds) and its signers time to veto
    /// (minutes); the ceiling bounds how long a finished session's gains wait (users can already
    /// withdraw what they own either way meanwhile).
    uint64 public constant MIN_CHALLENGE_WINDOW = 15 minutes;
    uint64 public constant MAX_CHALLENGE_WINDOW = 3 days;

    // For the assembly in _applyEntries (it only takes number literals).
    uint256 private constant ENTRY_SIZE = 21; // SettlementEntries.ENTRY_SIZE
    uint256 private constant MAX_BALANCE = 0xffffffffffffffffffffffffffff; // LazyBalance.MAX_BALANCE
    uint256 private constant MASK_112 = 0xffffffffffffffffffffffffffff;
    uint256 private constant PHASE_FINALIZED = 3; // uint8(Phase.Finalized)
    /// @dev Start of a 2^40-slot region holding the balance words, indexed by
    /// accountId << 8 | tokenIndex: keccak256("cme.vault.balances") with the low 40 bits cleared,
    /// so it collides with no declared or mapping slot (as ERC-7201 namespaces do), and the
    /// settlement loop addresses a balance with one ADD instead of a keccak.
    uint256 private constant BALANCES_BASE = 0x6329ee72008db3cbe43c57da7a24b1961532309881ce851b52db1c0000000000;
    uint256 private constant FAIL_ENTRY = 1;
    uint256 private constant FAIL_POSTED = 2;
    uint256 private constant FAIL_BALANCE = 3;
    /// @dev A token's net word stores net + NET_BIAS, so it is never zero (see `_nets`).
    int256 private constant NET_BIAS = int256(1 << 223);

    // ---------------------------------------------------------------- storage

    /// @dev What the vault keeps per token address. One word, read by every deposit and
    /// withdrawal anyway, so keeping the total costs them one warm SSTORE.
    struct TokenState {
        /// tokenIndex + 1, so that 0 means "not listed".
        uint8 indexPlusOne;
        /// Sum of every account's settled balance (pending deltas excluded): at most MAX_BALANCE.
        uint112 totalBalance;
    }

    // One word: everything postBatch reads besides the session itself, plus the session clock.
    uint32 private _currentSessionId;
    uint32 private _accountCount;
    uint8 private _tokenCount;
    uint64 private _nextSessionAt;
    uint64 private _sessionGap;

    // One word: the admin's other windows.
    uint64 private _gracePeriod;
    uint64 private _challengeWindow;

    mapping(uint32 sessionId => Session) private _sessions;

    mapping(address account => uint32) private _accountIds;
    mapping(uint32 accountId => address) private _accounts;

    mapping(uint256 tokenIndex => address) private _tokens;
    mapping(address token => TokenState) private _tokenStates;

    // Balances: the LazyBalance word of (accountId, tokenIndex) lives at slot
    // BALANCES_BASE + (accountId << 8 | tokenIndex), see _loadBalance / _storeBalance.

    /// @dev tokenIndex => sessionId (top 32 bits) | uint224(net + NET_BIAS), the net of deltas
    /// posted in that session. Keyed by token rather than (session, token), biased, and written
    /// at `listToken`, so the word is never zero: a batch pays a 5,000 gas rewrite per token it
    /// touches, never a 20,000 gas fresh write. |net| < 2^111 per entry times at most ~2^44
    /// entries per session, far inside the bias of 2^223.
    mapping(uint256 tokenIndex => uint256 word) private _nets;

    /// @dev account => nonce >> 8 => bitmap of used permit nonces.
    mapping(address account => mapping(uint256 => uint256)) private _usedPermits;

    // ---------------------------------------------------------------- constructor

    constructor(address admin, uint64 gracePeriod_) EIP712("CMEVault", "1") {
        if (admin == address(0)) revert ZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _setGracePeriod(gracePeriod_);
        _setSessionGap(MIN_SESSION_GAP);
        _setChallengeWindow(MIN_CHALLENGE_WINDOW);
    }

    // ---------------------------------------------------------------- admin

    /// @inheritdoc ICMEVault
    function listToken(address token) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (token == address(0)) revert ZeroAddress();
        if (_tokenStates[token].indexPlusOne != 0) revert TokenAlreadyListed(token);
        uint8 index = _tokenCount;
        if (index == MAX_TOKENS) revert TooManyTokens();
        uint8 decimals = _readDecimals(token);

        _tokenCount = index + 1;
        _tokens[index] = token;
        _tokenStates[token] = TokenState({indexPlusOne: index + 1, totalBalance: 0});
        // session 0, net 0: non-zero, and no session has id 0
        _nets[index] = uint256(NET_BIAS);
        emit TokenListed(token, index, decimals);
    }

    /// @inheritdoc ICMEVault
    function setGracePeriod(uint64 gracePeriod_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setGracePeriod(gracePeriod_);
    }

    /// @inheritdoc ICMEVault
    function setSessionGap(uint64 sessionGap_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setSessionGap(sessionGap_);
    }

    /// @inheritdoc ICMEVault
    function setChallengeWindow(uint64 challengeWindow_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setChallengeWindow(challengeWindow_);
    }

    /// @inheritdoc ICMEVault
    function pause() external onlyRole(DEFAULT_ADMIN_ROLE) {
        _pause();
    }

    /// @inheritdoc ICMEVault
    function unpause() external onlyRole(DEFAULT_ADMIN_ROLE) {
        _unpause();
    }

    // ---------------------------------------------------------------- deposits

    /// @inheritdoc ICMEVault
    function register(address account) external returns (uint32 accountId) {
        if (account == address(0)) revert ZeroAddress();
        return _register(account);
    }

    /// @inheritdoc ICMEVault
    function deposit(address token, uint256 amount) external nonReentrant whenNotPaused returns (uint256) {
        return _deposit(msg.sender, token, amount);
    }

    /// @inheritdoc ICMEVault
    function depositFor(address account, address token, uint256 amount)
        external
        nonReentrant
        whenNotPaused
        returns (uint256)
    {
        if (account == address(0)) revert ZeroAddress();
        return _deposit(account, token, amount);
    }

    /// @inheritdoc ICMEVault
    function depositWithPermit(address token, uint256 amount, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        external
        nonReentrant
        whenNotPaused
        returns (uint256)
    {
        _tokenIndex(token);
        // A permit front-run from the mempool makes this call revert although the allowance is
        // in place; the transferFrom below is the real check.
        try IERC20Permit(token).permit(msg.sender, address(this), amount, deadline, v, r, s) {} catch {}
        return _deposit(msg.sender, token, amount);
    }

    // ---------------------------------------------------------------- withdrawals

    /// @inheritdoc ICMEVault
    function withdraw(address token, uint256 amount) external nonReentrant {
        _withdrawWithoutPermit(token, amount, msg.sender);
    }

    /// @inheritdoc ICMEVault
    function withdrawTo(address token, uint256 amount, address to) external nonReentrant {
        _withdrawWithoutPermit(token, amount, to);
    }

    /// @inheritdoc ICMEVault
    function withdrawWithPermit(
        address token,
        uint256 amount,
        address to,
        uint256 nonce,
        uint256 deadline,
        bytes calldata signature
    ) external nonReentrant {
        uint32 sessionId = _currentSessionId;
        Phase phase = _sessions[sessionId].phase;
        if (phase != Phase.Trading) revert WrongPhase(sessionId, phase, Phase.Trading);
        if (block.timestamp > deadline) revert PermitExpired(deadline);
        uint256 bit = 1 << (nonce & 0xff);
        uint256 usedWord = _usedPermits[msg.sender][nonce >> 8];
        if (usedWord & bit != 0) revert PermitAlreadyUsed(msg.sender, nonce);
        bytes32 digest = _withdrawalDigest(msg.sender, token, amount, sessionId, nonce, deadline);
        (address signer,,) = ECDSA.tryRecoverCalldata(digest, signature);
        if (signer == address(0) || !hasRole(SETTLER_ROLE, signer)) revert InvalidPermitSigner(signer);

        _usedPermits[msg.sender][nonce >> 8] = usedWord | bit;
        // Trading: nothing of this session is posted, so the folded balance is all there is.
        _withdraw(token, amount, to, sessionId, 0);
    }

    // ---------------------------------------------------------------- sessions

    /// @inheritdoc ICMEVault
    function startSession(uint32 sessionId, uint64 deadline) external onlyRole(SETTLER_ROLE) {
        uint32 current = _currentSessionId;
        Phase phase = _sessions[current].phase;
        if (phase == Phase.Trading || phase == Phase.Settling) revert SessionActive(current, phase);
        uint256 opensAt = _nextSessionAt;
        if (block.timestamp < opensAt) revert SessionGapNotOver(opensAt);
        if (sessionId != current + 1) revert SessionIdMismatch(sessionId, current);
        if (deadline <= block.timestamp) revert DeadlineInPast(deadline);
        uint256 latest = block.timestamp + MAX_SESSION_LENGTH;
        if (deadline > latest) revert DeadlineTooFar(deadline, latest);

        _currentSessionId = sessionId;
        Session storage s = _sessions[sessionId];
        s.phase = Phase.Trading;
        s.startedAt = uint64(block.timestamp);
        s.deadline = deadline;
        emit SessionStarted(sessionId, uint64(block.timestamp), deadline);
    }

    /// @inheritdoc ICMEVault
    function beginSettlement(uint32 sessionId, bytes32 batchRoot, uint32 batchCount, bytes32 fillLogHash)
        external
        onlyRole(SETTLER_ROLE)
    {
        Session storage s = _sessions[sessionId];
        Phase phase = s.phase;
        if (phase != Phase.Trading) revert WrongPhase(sessionId, phase, Phase.Trading);
        // An empty chain has root 0; any other root commits at least one batch.
        if ((batchCount == 0) != (batchRoot == bytes32(0))) revert InvalidBatchRoot(batchRoot, batchCount);

        s.phase = Phase.Settling;
        s.batchCount = batchCount;
        s.batchRoot = batchRoot;
        s.batchHead = batchRoot;
        s.fillLogHash = fillLogHash;
        if (batchCount == 0) s.finalizableAt = uint48(block.timestamp + _challengeWindow);
        emit SettlementBegun(sessionId, batchRoot, fillLogHash, batchCount);
    }

    /// @inheritdoc ICMEVault
    function postBatch(uint32 sessionId, uint32 index, bytes calldata entries, bytes32 next)
        external
        onlyRole(SETTLER_ROLE)
    {
        Session storage s = _sessions[sessionId];
        _checkBatchOrder(s, sessionId, index, entries.length);
        (uint256 logData, uint256 logSize, bytes32 entriesHash) = _copyBatchLog(entries);
        if (SettlementEntries.link(sessionId, index, entriesHash, next) != s.batchHead) {
            revert BatchHashMismatch(sessionId, index);
        }
        // The committed count and the onion must end together, or the chain could never be
        // completed (ends early) or finalize would skip batches (ends late).
        if ((next == bytes32(0)) != (index + 1 == s.batchCount)) revert BatchHashMismatch(sessionId, index);

        s.batchesPosted = index + 1;
        s.batchHead = next;
        if (next == bytes32(0)) s.finalizableAt = uint48(block.timestamp + _challengeWindow);
        uint256 start;
        assembly ("memory-safe") {
            start := entries.offset
        }
        _recordNets(sessionId, _applyEntries(sessionId, start, start + entries.length));

        bytes32 topic0 = BatchPosted.selector;
        assembly ("memory-safe") {
            log3(logData, logSize, topic0, sessionId, index)
        }
    }

    /// @inheritdoc ICMEVault
    function finalize(uint32 sessionId) external onlyRole(SETTLER_ROLE) {
        Session storage s = _sessions[sessionId];
        (Phase phase, uint32 posted, uint32 count) = (s.phase, s.batchesPosted, s.batchCount);
        if (phase != Phase.Settling) revert WrongPhase(sessionId, phase, Phase.Settling);
        if (posted != count) revert BatchesIncomplete(sessionId, posted, count);
        uint256 finalizableAt = s.finalizableAt;
        if (block.timestamp < finalizableAt) revert ChallengeWindowNotOver(sessionId, finalizableAt);
        // Cost grows with listed tokens only; balances are never visited (they fold lazily).
        uint256 tokens = _tokenCount;
        for (uint256 t; t < tokens; ++t) {
            int256 net = _netOf(_nets[t], sessionId);
            if (net != 0) revert SessionNotNetZero(sessionId, _tokens[t], net);
        }

        _endSession(s, Phase.Finalized);
        emit SessionFinalized(sessionId);
    }

    /// @inheritdoc ICMEVault
    function voidSession(uint32 sessionId) external {
        Session storage s = _sessions[sessionId];
        _checkRunning(s, sessionId);
        uint256 voidableAt = uint256(s.deadline) + _gracePeriod;
        if (block.timestamp < voidableAt) revert VoidTooEarly(sessionId, voidableAt);

        _endSession(s, Phase.Voided);
        emit SessionVoided(sessionId, msg.sender);
    }

    /// @inheritdoc ICMEVault
    function vetoSession(uint32 sessionId, string calldata reason) external onlyRole(GUARDIAN_ROLE) {
        Session storage s = _sessions[sessionId];
        _checkRunning(s, sessionId);

        _endSession(s, Phase.Voided);
        emit SessionVetoed(sessionId, msg.sender, reason);
    }

    // ---------------------------------------------------------------- views

    /// @inheritdoc ICMEVault
    function currentSessionId() external view returns (uint32) {
        return _currentSessionId;
    }

    /// @inheritdoc ICMEVault
    function session(uint32 sessionId) external view returns (Session memory) {
        return _sessions[sessionId];
    }

    /// @inheritdoc ICMEVault
    function gracePeriod() external view returns (uint64) {
        return _gracePeriod;
    }

    /// @inheritdoc ICMEVault
    function sessionGap() external view returns (uint64) {
        return _sessionGap;
    }

    /// @inheritdoc ICMEVault
    function challengeWindow() external view returns (uint64) {
        return _challengeWindow;
    }

    /// @inheritdoc ICMEVault
    function nextSessionAt() external view returns (uint64) {
        return _nextSessionAt;
    }

    /// @inheritdoc ICMEVault
    function tokenCount() external view returns (uint8) {
        return _tokenCount;
    }

    /// @inheritdoc ICMEVault
    function tokenAt(uint8 tokenIndex) external view returns (address) {
        return _tokens[tokenIndex];
    }

    /// @inheritdoc ICMEVault
    function tokenIndexOf(address token) external view returns (uint8 tokenIndex, bool listed) {
        uint256 plusOne = _tokenStates[token].indexPlusOne;
        if (plusOne != 0) return (uint8(plusOne - 1), true);
    }

    /// @inheritdoc ICMEVault
    function accountIdOf(address account) external view returns (uint32) {
        return _accountIds[account];
    }

    /// @inheritdoc ICMEVault
    function accountAt(uint32 accountId) external view returns (address) {
        return _accounts[accountId];
    }

    /// @inheritdoc ICMEVault
    function accountCount() external view returns (uint32) {
        return _accountCount;
    }

    /// @inheritdoc ICMEVault
    function balanceOf(address account, address token) external view returns (uint256) {
        uint32 accountId = _accountIds[account];
        uint256 plusOne = _tokenStates[token].indexPlusOne;
        if (accountId == 0 || plusOne == 0) return 0;
        (uint256 settled,,) = _foldedBalance(_key(accountId, plusOne - 1));
        return settled;
    }

    /// @inheritdoc ICMEVault
    function withdrawable(address account, address token) external view returns (uint256) {
        uint32 accountId = _accountIds[account];
        uint256 plusOne = _tokenStates[token].indexPlusOne;
        if (accountId == 0 || plusOne == 0) return 0;
        uint32 sessionId = _currentSessionId;
        Session storage s = _sessions[sessionId];
        if (s.phase == Phase.Trading) return 0;
        (bool known, uint256 available,,,) = _withdrawable(s, sessionId, _key(accountId, plusOne - 1));
        return known ? available : 0;
    }

    /// @inheritdoc ICMEVault
    function totalBalance(address token) external view returns (uint256) {
        return _tokenStates[token].totalBalance;
    }

    /// @inheritdoc ICMEVault
    function slotOf(address account, address token)
        external
        view
        returns (uint256 settled, int256 pending, uint32 pendingSession)
    {
        uint32 accountId = _accountIds[account];
        uint256 plusOne = _tokenStates[token].indexPlusOne;
        if (accountId == 0 || plusOne == 0) return (0, 0, 0);
        uint256 word = _loadBalance(_key(accountId, plusOne - 1));
        return (LazyBalance.settledOf(word), LazyBalance.pendingOf(word), LazyBalance.sessionOf(word));
    }

    /// @inheritdoc ICMEVault
    function sessionNet(uint32 sessionId, address token) external view returns (int256) {
        uint256 plusOne = _tokenStates[token].indexPlusOne;
        if (plusOne == 0) return 0;
        return _netOf(_nets[plusOne - 1], sessionId);
    }

    /// @inheritdoc ICMEVault
    function isPermitUsed(address account, uint256 nonce) external view returns (bool) {
        return _usedPermits[account][nonce >> 8] & (1 << (nonce & 0xff)) != 0;
    }

    /// @inheritdoc ICMEVault
    function withdrawalDigest(
        address account,
        address token,
        uint256 amount,
        uint32 sessionId,
        uint256 nonce,
        uint256 deadline
    ) external view returns (bytes32) {
        return _withdrawalDigest(account, token, amount, sessionId, nonce, deadline);
    }

    /// @notice ERC-165: the vault interface and AccessControl's.
    function supportsInterface(bytes4 interfaceId) public view override returns (bool) {
        return interfaceId == type(ICMEVault).interfaceId || super.supportsInterface(interfaceId);
    }

    // ---------------------------------------------------------------- internal: settlement

    /// @dev Applies a batch's entries to their lazy slots and returns each token's net for the
    /// batch. This loop is the settlement's whole marginal cost, so it is assembly: per entry one
    /// calldataload, one keccak for the slot, one SLOAD, one SSTORE and one memory add. Any
    /// refusal breaks out with a code, and `_revertEntry` re-reads the entry to revert with the
    /// custom error and its arguments. The Solidity reference of the same rules is
    /// `_foldedBalance` plus the checks documented on `postBatch`.
    /// @param p calldata offset of the first entry; `end` is one past the last byte.
    function _applyEntries(uint32 sessionId, uint256 p, uint256 end) private returns (int256[] memory nets) {
        uint256 accounts = _accountCount;
        nets = new int256[](_tokenCount);
        uint256 failure;
        assembly ("memory-safe") {
            // Sessions run one after another, so a batch's returning participants almost all
            // carry pending deltas of the same earlier session: remember its outcome.
            let cachedSession := 0
            let cachedFinalized := 0
            for {} lt(p, end) { p := add(p, ENTRY_SIZE) } {
                // entry: uint32 accountId | uint8 tokenIndex | int128 delta, in the top 21 bytes;
                // its first 5 bytes are the balance key accountId << 8 | tokenIndex
                let key := shr(216, calldataload(p))
                let delta := signextend(15, shr(88, calldataload(p)))
                // One branch for three checks (the revert path sorts out which failed):
                // accountId in 1..accounts (0 wraps around), tokenIndex listed, and the delta
                // fits int112 (sign-extending its low 14 bytes changes nothing).
                if or(
                    or(iszero(lt(sub(shr(8, key), 1), accounts)), iszero(lt(and(key, 0xff), mload(nets)))),
                    iszero(eq(signextend(13, delta), delta))
                ) {
                    failure := FAIL_ENTRY
                    break
                }

                let slot := add(BALANCES_BASE, key)
                let old := sload(slot)
                // LazyBalance layout: settled uint112 | pending int112 | pendingSession uint32
                let settled := shr(144, old)
                let pendingSession := and(old, 0xffffffff)
                if pendingSession {
                    if iszero(eq(pendingSession, cachedSession)) {
                        // checked only on a cache miss: cachedSession is never this session
                        if eq(pendingSession, sessionId) {
                            failure := FAIL_POSTED
                            break
                        }
                        cachedSession := pendingSession
                        // Session.phase is the low byte of the struct's first slot
                        mstore(0, pendingSession)
                        mstore(0x20, _sessions.slot)
                        cachedFinalized := eq(and(sload(keccak256(0, 0x40)), 0xff), PHASE_FINALIZED)
                    }
                    // a finalized session's pending delta counts; a voided one's is dropped
                    if cachedFinalized { settled := add(settled, signextend(13, shr(32, old))) }
                }
                // `settled` is the settled balance now; settled + delta must be in
                // [0, MAX_BALANCE] (a negative sum reads as a huge unsigned number). While
                // settling, withdrawals keep settled + delta >= 0 and deposits only add (within
                // the token's total, which bounds every final balance), so the check still holds
                // when finalize makes the delta count.
                if gt(add(settled, delta), MAX_BALANCE) {
                    failure := FAIL_BALANCE
                    break
                }
                sstore(slot, or(or(shl(144, settled), shl(32, and(delta, MASK_112))), sessionId))
                // nets[tokenIndex] += delta
                let cell := add(nets, shl(5, add(and(key, 0xff), 1)))
                mstore(cell, add(mload(cell), delta))
            }
        }
        if (failure != 0) _revertEntry(failure, p);
    }

    /// @dev Reverts with the custom error for the entry at calldata offset `p`, re-deriving
    /// which check failed (the loop keeps one branch for the common checks).
    function _revertEntry(uint256 failure, uint256 p) private view {
        (uint256 accountId, uint256 tokenIndex, int256 delta) = SettlementEntries.decode(_calldataWord(p));
        uint8 token = uint8(tokenIndex);
        if (failure == FAIL_POSTED) revert DeltaAlreadyPosted(accountId, token);
        if (failure == FAIL_ENTRY) {
            if (accountId == 0 || accountId > _accountCount) revert UnknownAccountId(accountId);
            if (tokenIndex >= _tokenCount) revert UnknownTokenIndex(token);
            revert DeltaOutOfRange(accountId, token, delta);
        }
        (uint256 settled,,) = _foldedBalance((accountId << 8) | tokenIndex);
        int256 balance = int256(settled) + delta;
        if (balance < 0) revert NegativeBalance(accountId, token, balance);
        revert BalanceOverflow(accountId, token, uint256(balance));
    }

    function _checkRunning(Session storage s, uint32 sessionId) private view {
        Phase phase = s.phase;
        if (phase != Phase.Trading && phase != Phase.Settling) revert WrongPhase(sessionId, phase, Phase.Settling);
    }

    /// @dev Ends a session (finalized or voided) and opens the withdrawal window before the next.
    function _endSession(Session storage s, Phase outcome) private {
        s.phase = outcome;
        _nextSessionAt = uint64(block.timestamp) + _sessionGap;
    }

    function _checkBatchOrder(Session storage s, uint32 sessionId, uint32 index, uint256 length) private view {
        (Phase phase, uint32 posted, uint32 count) = (s.phase, s.batchesPosted, s.batchCount);
        if (phase != Phase.Settling) revert WrongPhase(sessionId, phase, Phase.Settling);
        if (index != posted || index >= count) revert BatchOutOfOrder(sessionId, index, posted);
        if (length == 0 || length % ENTRY_SIZE != 0) revert MalformedBatch(length);
    }

    /// @dev Adds a batch's nets to the session's per-token nets: one SSTORE per token touched.
    function _recordNets(uint32 sessionId, int256[] memory nets) private {
        uint256 tokens = nets.length;
        for (uint256 t; t < tokens; ++t) {
            int256 batchNet = nets[t];
            if (batchNet == 0) continue;
            // net + NET_BIAS stays in (0, 2^224): see `_nets`
            int256 net = _netOf(_nets[t], sessionId) + batchNet;
            _nets[t] = (uint256(sessionId) << 224) | uint256(net + NET_BIAS);
        }
    }

    /// @dev Copies `entries` into memory laid out as BatchPosted's ABI-encoded data
    /// (uint32 entryCount, bytes entries), and hashes the entries there: one copy serves both
    /// the chain check and the log.
    function _copyBatchLog(bytes calldata entries)
        private
        pure
        returns (uint256 data, uint256 size, bytes32 entriesHash)
    {
        uint256 length = entries.length;
        uint256 entryCount = length / SettlementEntries.ENTRY_SIZE;
        assembly ("memory-safe") {
            data := mload(0x40)
            let padded := and(add(length, 31), not(31))
            size := add(0x60, padded)
            mstore(data, entryCount)
            mstore(add(data, 0x20), 0x40)
            mstore(add(data, 0x40), length)
            // zero the last word first so the ABI padding is clean
            mstore(add(data, add(0x40, padded)), 0)
            calldatacopy(add(data, 0x60), entries.offset, length)
            entriesHash := keccak256(add(data, 0x60), length)
            mstore(0x40, add(data, size))
        }
    }

    function _calldataWord(uint256 offset) private pure returns (uint256 word) {
        assembly ("memory-safe") {
            word := calldataload(offset)
        }
    }

    function _netOf(uint256 word, uint32 sessionId) private pure returns (int256) {
        if (word >> 224 != sessionId) return 0;
        return int256(uint256(uint224(word))) - NET_BIAS;
    }

    // ---------------------------------------------------------------- internal: balances

    function _register(address account) private returns (uint32 accountId) {
        accountId = _accountIds[account];
        if (accountId != 0) return accountId;
        accountId = _accountCount + 1;

        _accountCount = accountId;
        _accountIds[account] = accountId;
        _accounts[accountId] = account;
        emit AccountRegistered(account, accountId);
    }

    /// @dev Credits what the vault's balance grew by, so a fee-on-transfer token is credited net
    /// of its fee. The one deviation from checks-effects-interactions: the credit follows the
    /// transfer because it depends on it; `nonReentrant` covers the gap.
    function _deposit(address account, address token, uint256 amount) private returns (uint256 credited) {
        if (amount == 0) revert ZeroAmount();
        uint256 tokenIndex = _tokenIndex(token);
        uint32 accountId = _register(account);

        uint256 before = IERC20(token).balanceOf(address(this));
        IERC20(token).safeTransferFrom(msg.sender, address(this), amount);
        uint256 afterwards = IERC20(token).balanceOf(address(this));
        if (afterwards < before) revert TokenBalanceDecreased(token, before, afterwards);
        credited = afterwards - before;
        if (credited == 0) revert ZeroAmount();
        // Every balance, and every balance a session could end with, is at most the sum of all
        // balances; capping the sum keeps every committed credit postable, whoever deposits.
        TokenState storage state = _tokenStates[token];
        uint256 total = uint256(state.totalBalance) + credited;
        if (total > LazyBalance.MAX_BALANCE) revert TotalBalanceOverflow(token, total);

        state.totalBalance = uint112(total);
        uint256 key = _key(accountId, tokenIndex);
        (uint256 settled, int256 pending, uint32 pendingSession) = _foldedBalance(key);
        settled += credited;
        _storeBalance(key, LazyBalance.pack(settled, pending, pendingSession));
        emit Deposited(account, token, msg.sender, credited, settled);
    }

    function _withdrawWithoutPermit(address token, uint256 amount, address to) private {
        uint32 sessionId = _currentSessionId;
        Phase phase = _sessions[sessionId].phase;
        if (phase == Phase.Trading) revert SessionActive(sessionId, phase);
        _withdraw(token, amount, to, 0, phase == Phase.Settling ? sessionId : 0);
    }

    /// @dev Debits msg.sender, then transfers. `settlingSession` is the session being settled (0
    /// if none); `permitSession` goes into the event.
    function _withdraw(address token, uint256 amount, address to, uint32 permitSession, uint32 settlingSession)
        private
    {
        if (amount == 0) revert ZeroAmount();
        if (to == address(0)) revert ZeroAddress();
        uint256 balance = _debit(token, amount, settlingSession);
        emit Withdrawn(msg.sender, token, to, amount, balance, permitSession);
        _pay(token, to, amount);
    }

    /// @dev Takes `amount` from msg.sender's slot and the token's total, up to what it may take
    /// now (`_withdrawable`); returns the settled balance left.
    function _debit(address token, uint256 amount, uint32 settlingSession) private returns (uint256 settled) {
        uint256 tokenIndex = _tokenIndex(token);
        uint32 accountId = _accountIds[msg.sender];
        if (accountId == 0) revert UnknownAccount(msg.sender);
        uint256 key = _key(accountId, tokenIndex);
        (bool known, uint256 available, uint256 before, int256 pending, uint32 pendingSession) =
            _withdrawable(_sessions[settlingSession], settlingSession, key);
        if (!known) revert DeltaNotPosted(settlingSession, msg.sender, token);
        if (available < amount) revert InsufficientBalance(msg.sender, token, available, amount);

        settled = before - amount;
        _tokenStates[token].totalBalance -= uint112(amount);
        // a posted delta of the session being settled stays; settled + pending >= 0 still holds
        _storeBalance(key, LazyBalance.pack(settled, pending, pendingSession));
    }

    /// @dev Transfers `amount` and checks the vault's balance fell by at most that: a token that
    /// takes a fee from the sender on top would otherwise pay out of other users' funds.
    function _pay(address token, address to, uint256 amount) private {
        uint256 before = IERC20(token).balanceOf(address(this));
        IERC20(token).safeTransfer(to, amount);
        uint256 afterwards = IERC20(token).balanceOf(address(this));
        uint256 taken = before > afterwards ? before - afterwards : 0;
        if (taken > amount) revert TokenTookMoreThanAmount(token, amount, taken);
    }

    /// @dev What the slot's owner may take now without a permit. `s`/`sessionId` is the session
    /// being settled, or anything not in Settling (then: the folded balance). While settling:
    /// min(settled, settled + pending) if this session's delta is posted (what it owns whichever
    /// way the session ends), the folded balance if every batch is posted (no delta), else
    /// unknown. Returns the slot's fields too.
    function _withdrawable(Session storage s, uint32 sessionId, uint256 key)
        private
        view
        returns (bool known, uint256 available, uint256 settled, int256 pending, uint32 pendingSession)
    {
        (settled, pending, pendingSession) = _foldedBalance(key);
        known = true;
        available = settled;
        if (s.phase != Phase.Settling) return (known, available, settled, pending, pendingSession);
        if (pendingSession == sessionId) {
            // posted: settled + pending >= 0 was checked at post and every debit since kept it
            if (pending < 0) available = settled - uint256(-pending);
        } else if (s.batchesPosted != s.batchCount) {
            known = false;
            available = 0;
        }
    }

    /// @dev The slot with a pending delta of a finished session folded in (finalized) or dropped
    /// (voided). A pending delta of the session being settled is returned as is.
    function _foldedBalance(uint256 key)
        private
        view
        returns (uint256 settled, int256 pending, uint32 pendingSession)
    {
        uint256 word = _loadBalance(key);
        pendingSession = LazyBalance.sessionOf(word);
        if (pendingSession == 0) return (LazyBalance.settledOf(word), 0, 0);
        Phase phase = _sessions[pendingSession].phase;
        if (phase == Phase.Finalized) return (uint256(LazyBalance.folded(word)), 0, 0);
        if (phase == Phase.Voided) return (LazyBalance.settledOf(word), 0, 0);
        return (LazyBalance.settledOf(word), LazyBalance.pendingOf(word), pendingSession);
    }

    function _loadBalance(uint256 key) private view returns (uint256 word) {
        assembly ("memory-safe") {
            word := sload(add(BALANCES_BASE, key))
        }
    }

    function _storeBalance(uint256 key, uint256 word) private {
        assembly ("memory-safe") {
            sstore(add(BALANCES_BASE, key), word)
        }
    }

    function _key(uint32 accountId, uint256 tokenIndex) private pure returns (uint256) {
        return (uint256(accountId) << 8) | tokenIndex;
    }

    function _tokenIndex(address token) private view returns (uint256) {
        uint256 plusOne = _tokenStates[token].indexPlusOne;
        if (plusOne == 0) revert TokenNotListed(token);
        return plusOne - 1;
    }

    // ---------------------------------------------------------------- internal: misc

    function _setGracePeriod(uint64 gracePeriod_) private {
        if (gracePeriod_ > MAX_GRACE_PERIOD) revert GracePeriodTooLong(gracePeriod_, MAX_GRACE_PERIOD);
        _gracePeriod = gracePeriod_;
        emit GracePeriodSet(gracePeriod_);
    }

    function _setSessionGap(uint64 sessionGap_) private {
        if (sessionGap_ < MIN_SESSION_GAP) revert SessionGapTooShort(sessionGap_, MIN_SESSION_GAP);
        _sessionGap = sessionGap_;
        emit SessionGapSet(sessionGap_);
    }

    function _setChallengeWindow(uint64 challengeWindow_) private {
        if (challengeWindow_ < MIN_CHALLENGE_WINDOW || challengeWindow_ > MAX_CHALLENGE_WINDOW) {
            revert ChallengeWindowOutOfRange(challengeWindow_, MIN_CHALLENGE_WINDOW, MAX_CHALLENGE_WINDOW);
        }
        _challengeWindow = challengeWindow_;
        emit ChallengeWindowSet(challengeWindow_);
    }

    function _withdrawalDigest(
        address account,
        address token,
        uint256 amount,
        uint32 sessionId,
        uint256 nonce,
        uint256 deadline
    ) private view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(abi.encode(WITHDRAWAL_TYPEHASH, account, token, amount, sessionId, nonce, deadline))
        );
    }

    /// @dev A listed token must report its decimals: the keeper and indexer scale by them.
    function _readDecimals(address token) private view returns (uint8) {
        (bool ok, bytes memory ret) = token.staticcall(abi.encodeCall(IERC20Metadata.decimals, ()));
        if (!ok || ret.length < 32) revert InvalidToken(token);
        uint256 decimals = abi.decode(ret, (uint256));
        if (decimals > type(uint8).max) revert InvalidToken(token);
        return uint8(decimals);
    }
}
