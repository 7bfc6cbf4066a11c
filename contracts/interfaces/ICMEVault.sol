// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title CME vault: custody and atomic session settlement for the Chicago Memecoin Exchange.
/// @notice Users deposit listed tokens; the keeper's pit trades off-chain in sessions; the settler
/// posts the session's netted (account, token, delta) entries in hash-chained batches and then
/// finalizes. Nothing posted is visible as a balance before `finalize`; a session that is not
/// finalized by its deadline plus a grace period can be voided by anyone, and then every account
/// keeps its pre-session balance.
///
/// @dev Storage is lazy (DESIGN.md, vault property 7): each (account, token) slot packs
/// `settled` (uint112), `pending` (int112) and `pendingSession` (uint32) into one word, so a
/// returning participant's delta is one warm-to-warm storage write. `pending` is folded into
/// `settled` the next time the slot is touched if its session was finalized, and dropped if it
/// was voided. Balances are capped at type(uint112).max (~5.19e33 base units), above the
/// largest memecoin supplies (~1e33); a credit beyond the cap reverts `BalanceOverflow`.
///
/// @dev Token assumptions (Warning): a listed token must not rebase. Fee-on-transfer tokens are
/// supported: deposits credit the amount the vault actually received. Tokens without a return
/// value and tokens that revert on zero transfers are handled through SafeERC20 and by never
/// transferring zero.
///
/// @dev Batch chain: at `beginSettlement` the settler commits `batchRoot`, the head of a hash
/// onion over the batches: root = h_0, h_i = keccak256(abi.encode(sessionId, i, keccak256(entries_i),
/// h_{i+1})), and h_n = bytes32(0). Batch i is posted with h_{i+1}; the vault checks it against
/// the current head and moves the head to h_{i+1}. So every batch is verified when it arrives,
/// only in order, and only once; finalize requires the head to be zero.
///
/// @dev Entries are packed 21 bytes each: uint32 accountId | uint8 tokenIndex | int128 delta
/// (big-endian two's complement). A delta must fit int112.
interface ICMEVault {
    /// @notice On-chain phase of a session. `None` is the zero value for unknown ids.
    enum Phase {
        None,
        Trading,
        Settling,
        Finalized,
        Voided
    }

    /// @notice What the vault keeps per session.
    struct Session {
        Phase phase;
        uint32 batchesPosted;
        uint32 batchCount;
        uint64 startedAt;
        uint64 deadline;
        bytes32 batchHead;
        bytes32 batchRoot;
        bytes32 fillLogHash;
    }

    // ---------------------------------------------------------------- errors

    error TokenNotListed(address token);
    error TokenAlreadyListed(address token);
    error TooManyTokens();
    error ZeroAmount();
    error ZeroAddress();
    error BalanceOverflow(uint256 accountId, uint8 tokenIndex, uint256 balance);
    error InsufficientBalance(address account, address token, uint256 balance, uint256 needed);
    error UnknownAccount(address account);
    error SessionActive(uint32 sessionId, Phase phase);
    error WrongPhase(uint32 sessionId, Phase phase, Phase expected);
    error SessionIdMismatch(uint32 given, uint32 current);
    error DeadlineInPast(uint64 deadline);
    error PermitExpired(uint256 deadline);
    error PermitAlreadyUsed(address account, uint256 nonce);
    error InvalidPermitSigner(address signer);
    error BatchOutOfOrder(uint32 sessionId, uint32 index, uint32 expected);
    error BatchHashMismatch(uint32 sessionId, uint32 index);
    error MalformedBatch(uint256 length);
    error DeltaOutOfRange(uint256 accountId, uint8 tokenIndex, int256 delta);
    error DeltaAlreadyPosted(uint256 accountId, uint8 tokenIndex);
    error NegativeBalance(uint256 accountId, uint8 tokenIndex, int256 balance);
    error BatchesIncomplete(uint32 sessionId, uint32 posted, uint32 count);
    error SessionNotNetZero(uint32 sessionId, address token, int256 net);
    error VoidTooEarly(uint32 sessionId, uint256 voidableAt);
    /// @notice `beginSettlement` with a root that does not match the count (0 iff no batches).
    error InvalidBatchRoot(bytes32 batchRoot, uint32 batchCount);
    /// @notice A batch entry names an account id that was never registered (or 0).
    error UnknownAccountId(uint256 accountId);
    /// @notice A batch entry names a token index that is not listed.
    error UnknownTokenIndex(uint8 tokenIndex);
    /// @notice `startSession` with a deadline beyond `latest` (now + MAX_SESSION_LENGTH): a far
    /// deadline would keep users from voiding and so hold their funds.
    error DeadlineTooFar(uint64 deadline, uint256 latest);
    /// @notice `setGracePeriod` above MAX_GRACE_PERIOD, for the same reason.
    error GracePeriodTooLong(uint64 gracePeriod, uint64 max);
    /// @notice `listToken` with an address that does not answer `decimals()` like an ERC-20.
    error InvalidToken(address token);

    // ---------------------------------------------------------------- events

    event TokenListed(address indexed token, uint8 indexed tokenIndex, uint8 decimals);
    event AccountRegistered(address indexed account, uint32 indexed accountId);
    event Deposited(address indexed account, address indexed token, address from, uint256 amount, uint256 balance);
    /// @dev `sessionId` is the session whose withdrawal permit authorized it, 0 for a withdrawal
    /// between sessions. `balance` is the account's balance after it.
    event Withdrawn(
        address indexed account, address indexed token, address to, uint256 amount, uint256 balance, uint32 sessionId
    );
    event SessionStarted(uint32 indexed sessionId, uint64 startedAt, uint64 deadline);
    event SettlementBegun(uint32 indexed sessionId, bytes32 batchRoot, bytes32 fillLogHash, uint32 batchCount);
    /// @dev `entries` is the packed batch as posted, so an indexer gets every delta from one log.
    event BatchPosted(uint32 indexed sessionId, uint32 indexed index, uint32 entryCount, bytes entries);
    event SessionFinalized(uint32 indexed sessionId);
    event SessionVoided(uint32 indexed sessionId, address voidedBy);
    event GracePeriodSet(uint64 gracePeriod);

    // ---------------------------------------------------------------- admin

    /// @notice Lists `token` (admin only). Assigns the next token index. The token must answer
    /// `decimals()`; at most 255 tokens.
    function listToken(address token) external;

    /// @notice Sets how long after a session's deadline anyone may void it (admin only), at most
    /// MAX_GRACE_PERIOD. Applies to the running session too.
    function setGracePeriod(uint64 gracePeriod) external;

    /// @notice Pauses / unpauses deposits (admin only). Withdrawals are never paused.
    function pause() external;
    function unpause() external;

    // ---------------------------------------------------------------- deposits

    /// @notice Registers `account` and assigns its account id; idempotent. Anyone may call it:
    /// registering moves no funds (the keeper registers its treasury and insurance accounts).
    function register(address account) external returns (uint32 accountId);

    /// @notice Deposits `amount` of `token` from msg.sender for msg.sender, in any phase (a
    /// deposit only adds to the settled balance, so it never breaks a posted delta's check).
    /// Registers msg.sender if needed.
    /// @return credited the amount the vault actually received (less than `amount` for a
    /// fee-on-transfer token). Reverts `ZeroAmount` if nothing arrived, and `BalanceOverflow` if
    /// the balance plus a pending credit of the settling session would exceed 2^112 - 1.
    function deposit(address token, uint256 amount) external returns (uint256 credited);

    /// @notice Deposits `amount` of `token` from msg.sender, credited to `account`.
    function depositFor(address account, address token, uint256 amount) external returns (uint256 credited);

    /// @notice EIP-2612 permit then deposit, in one transaction. A permit already used (for
    /// example front-run) is tolerated when the allowance suffices.
    function depositWithPermit(address token, uint256 amount, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        external
        returns (uint256 credited);

    // ---------------------------------------------------------------- withdrawals

    /// @notice Withdraws to msg.sender when no session is running (none, finalized or voided),
    /// up to `balanceOf`. Reverts `SessionActive` while trading (use a permit) or settling.
    function withdraw(address token, uint256 amount) external;

    /// @notice As `withdraw`, sending to `to`.
    function withdrawTo(address token, uint256 amount, address to) external;

    /// @notice Withdraws during a trading session with a permit signed by a settler over
    /// Withdrawal(address account,address token,uint256 amount,uint32 sessionId,uint256 nonce,uint256 deadline).
    /// Single use per (account, nonce). Only in the Trading phase of the current session: while
    /// settling no withdrawal is possible, so settled balances can only grow between a delta's
    /// post (where `settled + delta >= 0` is checked) and finalize.
    function withdrawWithPermit(
        address token,
        uint256 amount,
        address to,
        uint256 nonce,
        uint256 deadline,
        bytes calldata signature
    ) external;

    // ---------------------------------------------------------------- sessions (settler)

    /// @notice Starts session `sessionId` (must be currentSessionId() + 1) with a settlement
    /// deadline, in the future and at most MAX_SESSION_LENGTH away. The previous session must be
    /// finalized or voided (else `SessionActive`).
    function startSession(uint32 sessionId, uint64 deadline) external;

    /// @notice Ends trading and commits the batch chain's root, its length and the hash of the
    /// session's fill log (published off-chain by the keeper for auditors). `batchCount` is 0
    /// exactly when `batchRoot` is 0 (a session without deltas).
    function beginSettlement(uint32 sessionId, bytes32 batchRoot, uint32 batchCount, bytes32 fillLogHash) external;

    /// @notice Posts batch `index` of the session with the next link of the chain. Reverts
    /// `BatchOutOfOrder(sessionId, index, batchesPosted)` unless index == batchesPosted <
    /// batchCount (so a replayed batch is refused), `BatchHashMismatch` unless the link hashes to
    /// the current head and `next` is 0 exactly for the last batch, `DeltaAlreadyPosted` for a
    /// second delta of the same (account, token) in the session, and `NegativeBalance` /
    /// `BalanceOverflow` unless settled + delta is within [0, 2^112 - 1].
    function postBatch(uint32 sessionId, uint32 index, bytes calldata entries, bytes32 next) external;

    /// @notice Makes the session's deltas balances. Reverts unless every batch is posted, and
    /// every listed token's deltas sum to exactly zero.
    function finalize(uint32 sessionId) external;

    /// @notice Voids an unfinalized session at or after deadline + grace period. Callable by
    /// anyone. Reverts `WrongPhase(sessionId, phase, Settling)` unless trading or settling.
    function voidSession(uint32 sessionId) external;

    // ---------------------------------------------------------------- views

    function currentSessionId() external view returns (uint32);
    function session(uint32 sessionId) external view returns (Session memory);
    function gracePeriod() external view returns (uint64);
    function tokenCount() external view returns (uint8);
    function tokenAt(uint8 tokenIndex) external view returns (address);
    function tokenIndexOf(address token) external view returns (uint8 tokenIndex, bool listed);
    function accountIdOf(address account) external view returns (uint32);
    function accountAt(uint32 accountId) external view returns (address);
    function accountCount() external view returns (uint32);

    /// @notice What `account` owns of `token` now: settled plus any finalized pending delta.
    function balanceOf(address account, address token) external view returns (uint256);

    /// @notice The raw lazy slot, for auditors.
    function slotOf(address account, address token)
        external
        view
        returns (uint256 settled, int256 pending, uint32 pendingSession);

    /// @notice Net of posted deltas for `token` in `sessionId`; finalize requires zero. Tracked
    /// for the latest session only: an earlier session reads 0 (finalized ones net to zero,
    /// voided ones had their deltas ignored).
    function sessionNet(uint32 sessionId, address token) external view returns (int256);

    function isPermitUsed(address account, uint256 nonce) external view returns (bool);

    /// @notice EIP-712 digest of a withdrawal permit, for off-chain signers and tests.
    function withdrawalDigest(
        address account,
        address token,
        uint256 amount,
        uint32 sessionId,
        uint256 nonce,
        uint256 deadline
    ) external view returns (bytes32);
}
