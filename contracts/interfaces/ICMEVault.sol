// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title CME vault: custody and atomic session settlement for the Chicago Memecoin Exchange.
/// @notice Users deposit listed tokens; the keeper's pit trades off-chain in sessions; the settler
/// posts the session's netted (account, token, delta) entries in hash-chained batches and then,
/// once a challenge window has passed, finalizes. Nothing posted is visible as a balance before
/// `finalize`; a session that is not finalized by its deadline plus a grace period can be voided
/// by anyone, a guardian can veto (void) it at any time before `finalize`, and then every account
/// keeps its pre-session balance.
///
/// @dev What a user relies on, and for how long (the rules below hold against the settler, the
/// admin within its bounds, hostile tokens and outsiders):
/// - Between sessions withdrawals are free. After every finalize or void `startSession` reverts
///   for `sessionGap` (at least MIN_SESSION_GAP), so the settler cannot chain sessions to keep a
///   user from leaving.
/// - While trading, withdrawals need a settler's permit (the pit may be using the funds). A
///   settler that signs none holds funds at most until deadline + grace period (at most
///   MAX_SESSION_LENGTH + MAX_GRACE_PERIOD), when anyone may void.
/// - While settling, an account whose delta for a token is posted (or, once every batch is
///   posted, any account) can withdraw min(pre-session balance, pre-session balance + delta)
///   without the keeper: the amount it owns whichever way the session ends.
/// - `finalize` waits `challengeWindow` after the last batch (MIN_CHALLENGE_WINDOW to
///   MAX_CHALLENGE_WINDOW), during which the GUARDIAN_ROLE can veto a settlement that does not
///   match the published fill log.
/// - Every token's deltas must net to zero, every balance stays within [0, 2^112 - 1], and the
///   vault checks its own token balance around every transfer, so it never pays out more than it
///   debits.
/// - Warning: the vault cannot tell a true session from a false one that nets to zero. A settler
///   can post deltas moving any registered account's balance (up to all of it) to another
///   account; the published fill log lets anyone detect it, and only the guardian's veto within
///   the challenge window (or a void) stops it. Funds withdrawn during the session gap are not
///   exposed to the next session; the admin, who grants and revokes every role, is trusted as far
///   as the settler and the guardian together.
///
/// @dev Storage is lazy (DESIGN.md, vault property 7): each (account, token) slot packs
/// `settled` (uint112), `pending` (int112) and `pendingSession` (uint32) into one word, so a
/// returning participant's delta is one warm-to-warm storage write. `pending` is folded into
/// `settled` the next time the slot is touched if its session was finalized, and dropped if it
/// was voided. Balances are capped at type(uint112).max (~5.19e33 base units), above the
/// largest memecoin supplies (~1e33), and so is the sum of all balances of a token
/// (`totalBalance`): a deposit beyond it reverts `TotalBalanceOverflow`. Because no account's
/// balance after a session can exceed the sum of all balances, no deposit by anyone can make a
/// committed batch unpostable.
///
/// @dev Token assumptions (Warning): a listed token must not rebase. Fee-on-transfer tokens are
/// supported: deposits credit the amount the vault's balance actually grew by. A deposit that
/// shrinks the vault's balance reverts `TokenBalanceDecreased`; a withdrawal that takes more than
/// `amount` from the vault reverts `TokenTookMoreThanAmount`. Tokens without a return value and
/// tokens that revert on zero transfers are handled through SafeERC20 and by never transferring
/// zero.
///
/// @dev Batch chain: at `beginSettlement` the settler commits `batchRoot`, the head of a hash
/// onion over the batches: root = h_0, h_i = keccak256(abi.encode(sessionId, i, keccak256(entries_i),
/// h_{i+1})), and h_n = bytes32(0). Batch i is posted with h_{i+1}; the vault checks it against
/// the current head and moves the head to h_{i+1}. So every batch is verified when it arrives,
/// only in order, and only once; finalize requires the head to be zero.
///
/// @dev Entries are packed 21 bytes each: uint32 accountId | uint8 tokenIndex | int128 delta
/// (big-endian two's complement). A delta must fit int112. A batch never writes a storage slot
/// for the first time except the balance slot of an entry (the per-token nets are initialised at
/// `listToken`), so its gas is bounded by a fixed cost per batch, per entry and per token touched.
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
        /// @dev When `finalize` opens: set when the last batch is posted (at `beginSettlement`
        /// for a session without batches) to that time plus `challengeWindow`; 0 before. In the
        /// first word with the fields above, so setting it costs a batch no fresh storage write.
        uint48 finalizableAt;
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
    /// @notice `startSession` before the withdrawal window after the last finalize or void has
    /// passed: it opens at `opensAt` (unix seconds).
    error SessionGapNotOver(uint256 opensAt);
    /// @notice `finalize` before the challenge window after the last batch has passed.
    error ChallengeWindowNotOver(uint32 sessionId, uint256 finalizableAt);
    /// @notice `setSessionGap` below MIN_SESSION_GAP.
    error SessionGapTooShort(uint64 sessionGap, uint64 min);
    /// @notice `setChallengeWindow` outside [MIN_CHALLENGE_WINDOW, MAX_CHALLENGE_WINDOW].
    error ChallengeWindowOutOfRange(uint64 challengeWindow, uint64 min, uint64 max);
    /// @notice A deposit that would take the sum of all balances of `token` above 2^112 - 1.
    error TotalBalanceOverflow(address token, uint256 totalBalance);
    /// @notice A deposit during which the vault's balance of `token` went down.
    error TokenBalanceDecreased(address token, uint256 before, uint256 afterwards);
    /// @notice A withdrawal of `amount` that took `taken` > `amount` from the vault's balance.
    error TokenTookMoreThanAmount(address token, uint256 amount, uint256 taken);
    /// @notice A withdrawal while settling by an account whose delta for `token` is not posted
    /// while batches remain: the vault cannot yet know what it will own.
    error DeltaNotPosted(uint32 sessionId, address account, address token);

    // ---------------------------------------------------------------- events

    event TokenListed(address indexed token, uint8 indexed tokenIndex, uint8 decimals);
    event AccountRegistered(address indexed account, uint32 indexed accountId);
    event Deposited(address indexed account, address indexed token, address from, uint256 amount, uint256 balance);
    /// @dev `sessionId` is the session whose withdrawal permit authorized it, 0 for a withdrawal
    /// without a permit (between sessions, or while settling). `balance` is the account's settled
    /// balance after it (a posted, unfinalized delta is not included, as in `Deposited`).
    event Withdrawn(
        address indexed account, address indexed token, address to, uint256 amount, uint256 balance, uint32 sessionId
    );
    event SessionStarted(uint32 indexed sessionId, uint64 startedAt, uint64 deadline);
    event SettlementBegun(uint32 indexed sessionId, bytes32 batchRoot, bytes32 fillLogHash, uint32 batchCount);
    /// @dev `entries` is the packed batch as posted, so an indexer gets every delta from one log.
    event BatchPosted(uint32 indexed sessionId, uint32 indexed index, uint32 entryCount, bytes entries);
    event SessionFinalized(uint32 indexed sessionId);
    event SessionVoided(uint32 indexed sessionId, address voidedBy);
    /// @dev The guardian's void: the same effects as `SessionVoided`, with the guardian's reason.
    event SessionVetoed(uint32 indexed sessionId, address indexed guardian, string reason);
    event GracePeriodSet(uint64 gracePeriod);
    event SessionGapSet(uint64 sessionGap);
    event ChallengeWindowSet(uint64 challengeWindow);

    // ---------------------------------------------------------------- admin

    /// @notice Lists `token` (admin only). Assigns the next token index and initialises the
    /// token's session-net word, so no batch pays a first storage write for it. The token must
    /// answer `decimals()`; at most 255 tokens.
    function listToken(address token) external;

    /// @notice Sets how long after a session's deadline anyone may void it (admin only), at most
    /// MAX_GRACE_PERIOD. Applies to the running session too.
    function setGracePeriod(uint64 gracePeriod) external;

    /// @notice Sets how long after a finalize or void `startSession` stays closed (admin only), at
    /// least MIN_SESSION_GAP. Applies from the next finalize or void: a window already open keeps
    /// its end. The constructor sets MIN_SESSION_GAP.
    function setSessionGap(uint64 sessionGap) external;

    /// @notice Sets how long after the last batch `finalize` stays closed (admin only), within
    /// [MIN_CHALLENGE_WINDOW, MAX_CHALLENGE_WINDOW]. Applies to windows that start after the call.
    /// The constructor sets MIN_CHALLENGE_WINDOW.
    /// @dev Warning: the settler must post its last batch at least `challengeWindow` before the
    /// session's deadline + grace period, or anyone may void it before it can be finalized.
    function setChallengeWindow(uint64 challengeWindow) external;

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
    /// @return credited the amount the vault's balance grew by (less than `amount` for a
    /// fee-on-transfer token). Reverts `ZeroAmount` if nothing arrived, `TokenBalanceDecreased` if
    /// the vault's balance went down, and `TotalBalanceOverflow` if the sum of all balances of
    /// `token` would exceed 2^112 - 1 (which is what keeps every committed credit postable).
    function deposit(address token, uint256 amount) external returns (uint256 credited);

    /// @notice Deposits `amount` of `token` from msg.sender, credited to `account`.
    function depositFor(address account, address token, uint256 amount) external returns (uint256 credited);

    /// @notice EIP-2612 permit then deposit, in one transaction. A permit already used (for
    /// example front-run) is tolerated when the allowance suffices.
    function depositWithPermit(address token, uint256 amount, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        external
        returns (uint256 credited);

    // ---------------------------------------------------------------- withdrawals

    /// @notice Withdraws to msg.sender without the keeper, up to `withdrawable(msg.sender, token)`:
    /// - no session running (none, finalized or voided): up to `balanceOf`;
    /// - settling, with the account's delta for `token` posted: up to min(settled, settled +
    ///   delta), what it owns whether the session is finalized or voided; the posted delta stays
    ///   and still folds in at finalize;
    /// - settling, every batch posted and no delta for the account: up to `balanceOf`;
    /// - settling otherwise: reverts `DeltaNotPosted` (its delta may be in a batch to come, and
    ///   must stay postable);
    /// - trading: reverts `SessionActive` (use a permit).
    /// Reverts `InsufficientBalance(account, token, withdrawable, amount)` above the limit, and
    /// `TokenTookMoreThanAmount` if the token takes more than `amount` from the vault.
    function withdraw(address token, uint256 amount) external;

    /// @notice As `withdraw`, sending to `to`.
    function withdrawTo(address token, uint256 amount, address to) external;

    /// @notice Withdraws during a trading session with a permit signed by a settler over
    /// Withdrawal(address account,address token,uint256 amount,uint32 sessionId,uint256 nonce,uint256 deadline).
    /// Single use per (account, nonce). Only in the Trading phase of the current session, before
    /// anything is committed: the keeper's plan accounts for it. While settling, `withdraw` only
    /// takes what keeps `settled + delta >= 0` for a posted delta, and nothing from an account
    /// whose delta may still be posted, so every committed batch stays postable.
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
    /// finalized or voided (else `SessionActive`) at least `sessionGap` ago (else
    /// `SessionGapNotOver(nextSessionAt)`): that window is every user's to withdraw in.
    function startSession(uint32 sessionId, uint64 deadline) external;

    /// @notice Ends trading and commits the batch chain's root, its length and the hash of the
    /// session's fill log (published off-chain by the keeper for auditors). `batchCount` is 0
    /// exactly when `batchRoot` is 0 (a session without deltas); then the challenge window starts
    /// here.
    function beginSettlement(uint32 sessionId, bytes32 batchRoot, uint32 batchCount, bytes32 fillLogHash) external;

    /// @notice Posts batch `index` of the session with the next link of the chain. Reverts
    /// `BatchOutOfOrder(sessionId, index, batchesPosted)` unless index == batchesPosted <
    /// batchCount (so a replayed batch is refused), `BatchHashMismatch` unless the link hashes to
    /// the current head and `next` is 0 exactly for the last batch, `DeltaAlreadyPosted` for a
    /// second delta of the same (account, token) in the session, and `NegativeBalance` /
    /// `BalanceOverflow` unless settled + delta is within [0, 2^112 - 1]. The last batch starts
    /// the challenge window: `finalizableAt` = now + `challengeWindow`.
    function postBatch(uint32 sessionId, uint32 index, bytes calldata entries, bytes32 next) external;

    /// @notice Makes the session's deltas balances. Reverts unless every batch is posted, the
    /// challenge window has passed (`ChallengeWindowNotOver`), and every listed token's deltas sum
    /// to exactly zero. Opens the withdrawal window: no session starts for `sessionGap`.
    function finalize(uint32 sessionId) external;

    /// @notice Voids an unfinalized session at or after deadline + grace period. Callable by
    /// anyone. Reverts `WrongPhase(sessionId, phase, Settling)` unless trading or settling.
    /// Posted deltas are dropped lazily; every account keeps its pre-session balance. Opens the
    /// withdrawal window as `finalize` does.
    function voidSession(uint32 sessionId) external;

    /// @notice The guardian's veto (GUARDIAN_ROLE only, a role apart from admin and settler,
    /// meant for an auditors' multisig): voids a trading or settling session at any time before
    /// `finalize`, with the same effects as `voidSession`. Meant for the challenge window, when
    /// the posted batches can be checked against the published fill log. Reverts
    /// `WrongPhase(sessionId, phase, Settling)` unless trading or settling.
    function vetoSession(uint32 sessionId, string calldata reason) external;

    // ---------------------------------------------------------------- views

    function currentSessionId() external view returns (uint32);
    function session(uint32 sessionId) external view returns (Session memory);
    function gracePeriod() external view returns (uint64);
    function sessionGap() external view returns (uint64);
    function challengeWindow() external view returns (uint64);

    /// @notice When `startSession` opens (unix seconds): the last finalize or void plus the
    /// `sessionGap` of that time; 0 before the first.
    function nextSessionAt() external view returns (uint64);
    function tokenCount() external view returns (uint8);
    function tokenAt(uint8 tokenIndex) external view returns (address);
    function tokenIndexOf(address token) external view returns (uint8 tokenIndex, bool listed);
    function accountIdOf(address account) external view returns (uint32);
    function accountAt(uint32 accountId) external view returns (address);
    function accountCount() external view returns (uint32);

    /// @notice What `account` owns of `token` now: settled plus any finalized pending delta.
    function balanceOf(address account, address token) external view returns (uint256);

    /// @notice What `withdraw` would pay `account` of `token` now, without a permit (see
    /// `withdraw`; 0 while trading).
    function withdrawable(address account, address token) external view returns (uint256);

    /// @notice Sum of every account's `balanceOf` `token` (posted, unfinalized deltas excluded):
    /// the vault's liability in the token, at most 2^112 - 1. Its token balance is at least this.
    function totalBalance(address token) external view returns (uint256);

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
