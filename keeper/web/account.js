// The wallet drawer: connect an EIP-1193 wallet, show the account's wallet, vault and pit
// balances, deposit (approve + vault.deposit), withdraw in any phase (the keeper says which way and
// how much: vault.withdraw, or its permit then vault.withdrawWithPermit), and sign the broker,
// prompt, pairs and re-prompt actions with EIP-712 before posting them to the keeper. The keeper
// is the authority on every rule; the page explains the rules up front and shows the keeper's
// answer, field and all.
import { getJSON, postJSON, KeeperError } from "./api.js";
import { quoteToken } from "./views.js";
import { formatBalance, formatFixed, formatUnitsExact, parseUnits, shortAddress } from "./format.js";
import { serverNow } from "./state.js";
import { normAccount, normWithdrawal } from "./wire.js";
import {
  authorisedAccount,
  bytesArg,
  callUint,
  chainId as walletChainId,
  encodeCall,
  freshNonce,
  provider,
  requestAccount,
  sendTransaction,
  signTypedData,
  switchChain,
  typedDataFor,
  waitForReceipt,
  walletMessage,
} from "./wallet.js";

const $ = (id) => document.getElementById(id);
const PRIMARY_TYPES = { "set-broker": "SetBroker", "set-prompt": "SetPrompt", "set-pairs": "SetPairs", reprompt: "Reprompt" };
/** How long a signed request stays valid: long enough for a slow wallet, short enough to be useless later. */
const EXPIRY_SEC = 600;

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

export function createAccountPanel({ state, onChange }) {
  const drawer = $("drawer");
  const notice = $("wallet-notice");
  const accountEl = $("account");
  const button = $("wallet-btn");
  let eip712 = null;
  let refreshTimer = null;
  let busy = false;

  const showNotice = (text, kind = "info") => {
    notice.hidden = !text;
    notice.textContent = text ?? "";
    notice.dataset.kind = kind;
  };

  function setMsg(form, kind, text, field) {
    const msg = form.querySelector(".msg");
    msg.textContent = text ?? "";
    msg.dataset.kind = kind;
    for (const f of form.querySelectorAll(".invalid")) f.classList.remove("invalid");
    if (field) {
      // The keeper names nested fields by path ("pairs.1"): mark the control that holds them.
      field = String(field).split(".")[0];
      const target = form.querySelector(`[name="${field}"]`) ?? form.querySelector(`[data-field="${field}"]`);
      if (target) {
        target.classList.add("invalid");
        target.setAttribute("aria-invalid", "true");
      }
    }
  }

  function openDrawer() {
    drawer.hidden = false;
    document.body.classList.add("drawer-open");
  }
  function closeDrawer() {
    drawer.hidden = true;
    document.body.classList.remove("drawer-open");
  }
  $("drawer-close").addEventListener("click", closeDrawer);
  document.addEventListener("keydown", (e) => e.key === "Escape" && !drawer.hidden && closeDrawer());

  button.addEventListener("click", async () => {
    openDrawer();
    if (state.wallet?.address) return;
    await connect();
  });

  async function connect() {
    if (!provider()) {
      accountEl.hidden = true;
      showNotice("No browser wallet found. Install MetaMask, Rabby or another EIP-1193 wallet, then reload this page. You can watch the pit without one.", "warn");
      return;
    }
    showNotice("Waiting for your wallet…");
    try {
      const address = await requestAccount();
      await setAccount(address);
      showNotice("");
    } catch (err) {
      showNotice(walletMessage(err), "error");
    }
  }

  async function setAccount(address) {
    state.wallet = { address, accountId: null, view: null, walletBalances: new Map(), chainId: null, withdrawal: null };
    button.textContent = shortAddress(address);
    button.classList.add("connected");
    accountEl.hidden = false;
    $("acct-address").textContent = address;
    await refresh();
  }

  async function loadEip712() {
    if (!eip712) eip712 = await getJSON("/api/eip712");
    return eip712;
  }

  function expectedChainId() {
    return eip712?.domain?.chainId ?? state.session?.chainId ?? null;
  }

  async function refresh() {
    const w = state.wallet;
    if (!w) return;
    try {
      await loadEip712();
    } catch (err) {
      showNotice(`Cannot load the signing domain from the keeper: ${err.message}`, "error");
    }
    try {
      w.chainId = await walletChainId();
    } catch {
      w.chainId = null;
    }
    try {
      w.view = normAccount(state, await getJSON(`/api/accounts/${w.address}`));
    } catch (err) {
      // An address that never deposited is not an error for the user, just an empty account.
      w.view = err instanceof KeeperError && err.status === 404 ? null : w.view;
      if (!(err instanceof KeeperError && err.status === 404)) showNotice(`Cannot load your account: ${err.message}`, "error");
    }
    w.accountId = w.view?.accountId ?? null;
    const chainOk = w.chainId !== null && w.chainId === expectedChainId();
    if (chainOk) {
      await Promise.all(
        [...state.tokens.values()].map(async (t) => {
          try {
            w.walletBalances.set(t.index, await callUint(t.address, encodeCall("balanceOf", [w.address])));
          } catch {
            w.walletBalances.delete(t.index);
          }
        }),
      );
    }
    await loadWithdrawal();
    render();
    onChange();
  }

  /** The withdraw form's token (the deposit form's list of tokens, its own choice). */
  function withdrawToken() {
    const sel = $("f-withdraw").elements.token;
    return state.tokens.get(Number(sel.value)) ?? [...state.tokens.values()].sort((a, b) => a.index - b.index)[0] ?? null;
  }

  /** Asks the keeper how the wallet can withdraw the chosen token now (null when it cannot say). */
  async function loadWithdrawal(token = withdrawToken()) {
    const w = state.wallet;
    if (!w || !token) return null;
    try {
      const plan = normWithdrawal(await getJSON(`/api/accounts/${w.address}/withdrawal?token=${encodeURIComponent(token.symbol)}`));
      if (state.wallet === w) w.withdrawal = plan;
      return plan;
    } catch {
      if (state.wallet === w) w.withdrawal = null;
      return null;
    }
  }

  /** Settlement progress may have posted the account's delta: ask again, then redraw. */
  async function refreshWithdrawal() {
    if (!state.wallet || busy) return;
    await loadWithdrawal();
    render();
  }

  function scheduleRefresh(ms = 1200) {
    if (!state.wallet || refreshTimer !== null) return;
    refreshTimer = setTimeout(() => {
      refreshTimer = null;
      void refresh();
    }, ms);
  }

  function render() {
    const w = state.wallet;
    if (!w) return;
    const view = w.view;
    $("acct-id").textContent = w.accountId === null ? "no deposit yet" : `account #${w.accountId}`;
    const chain = $("acct-chain");
    chain.textContent = "";
    const want = expectedChainId();
    if (w.chainId !== null && want !== null && w.chainId !== want) {
      chain.append(el("span", "bad", `wallet on chain ${w.chainId}, pit on ${want} `));
      const b = el("button", "btn btn-small", "Switch");
      b.type = "button";
      b.addEventListener("click", async () => {
        try {
          await switchChain(want);
          await refresh();
        } catch (err) {
          showNotice(walletMessage(err), "error");
        }
      });
      chain.append(b);
    } else if (w.chainId !== null) chain.append(el("span", "good", `chain ${w.chainId}`));

    // Balances: wallet (ERC-20), vault (settled on-chain), pit (inventory this session, may be negative).
    const body = $("balances");
    body.textContent = "";
    const rows = view?.balances ?? new Map();
    for (const t of [...state.tokens.values()].sort((a, b) => a.index - b.index)) {
      const b = rows.get(t.index);
      const wb = w.walletBalances.get(t.index);
      const tr = el("tr");
      const pit = b?.pit ?? "0";
      const pitCell = el("td", `num ${String(pit).startsWith("-") ? "down" : ""}`, formatBalance(pit, t.decimals));
      pitCell.title = `${formatUnitsExact(pit, t.decimals)} ${t.symbol}${b?.reserved && b.reserved !== "0" ? ` · ${formatUnitsExact(b.reserved, t.decimals)} reserved by open orders` : ""}`;
      const vaultCell = el("td", "num", formatBalance(b?.vault ?? "0", t.decimals));
      vaultCell.title = `${formatUnitsExact(b?.vault ?? "0", t.decimals)} ${t.symbol}`;
      const walletCell = el("td", "num muted", wb === undefined ? "—" : formatBalance(wb, t.decimals));
      if (wb !== undefined) walletCell.title = `${formatUnitsExact(wb, t.decimals)} ${t.symbol} in your wallet`;
      tr.append(el("td", "", t.symbol), walletCell, vaultCell, pitCell);
      body.append(tr);
    }

    const margin = $("margin");
    margin.textContent = "";
    const quote = quoteToken(state);
    if (view?.margin) {
      const m = view.margin;
      const amount = (v) => (v === null || v === undefined ? "—" : formatFixed(v, quote.decimals, 2));
      const status = el("span", `badge m-${m.status}`, m.status === "ok" ? "margin ok" : m.status === "below_im" ? "below initial margin" : m.status === "below_mm" ? "below maintenance: liquidating" : m.status);
      margin.append(
        status,
        el("span", "", `equity ${amount(m.equity)}`),
        el("span", "muted", `IM ${amount(m.initialMargin)} · MM ${amount(m.maintenanceMargin)}`),
      );
      if (view.pnl !== null && view.pnl !== undefined) {
        const pnl = String(view.pnl);
        margin.append(el("span", pnl.startsWith("-") ? "down" : "up", `PnL ${formatFixed(pnl, quote.decimals, 2, { sign: true })}`));
      }
    }

    const orders = $("open-orders");
    orders.textContent = "";
    const open = view?.openOrders ?? [];
    if (open.length > 0) {
      orders.append(el("h3", "", `Open orders (${open.length})`));
      const list = el("ul");
      for (const o of open.slice(0, 12)) {
        const ps = state.pairs.get(o.pair);
        const px = ps ? ps.units.price(o.price) : String(o.price);
        const sz = ps ? `${ps.units.size(o.remaining ?? o.size)} ${ps.base.symbol}` : String(o.size);
        list.append(el("li", o.side === "sell" ? "down" : "up", `${o.side} ${sz} @ ${px} ${ps?.pair.symbol ?? ""}`));
      }
      orders.append(list);
    }

    // Deposit token list.
    const tokenSel = $("f-deposit").elements.token;
    if (tokenSel.options.length !== state.tokens.size) {
      tokenSel.textContent = "";
      for (const t of [...state.tokens.values()].sort((a, b) => a.index - b.index)) {
        const o = el("option", "", t.symbol);
        o.value = String(t.index);
        tokenSel.append(o);
      }
    }

    const depToken = state.tokens.get(Number(tokenSel.value));
    const depHeld = depToken ? w.walletBalances.get(depToken.index) : undefined;
    $("f-deposit").querySelector('[data-hint="deposit"]').textContent =
      depToken && depHeld !== undefined ? `Wallet: ${formatBalance(depHeld, depToken.decimals)} ${depToken.symbol}. ` : "";

    // Withdraw: the same tokens; the keeper's answer for the chosen one.
    const wdSel = $("f-withdraw").elements.token;
    if (wdSel.options.length !== state.tokens.size) {
      const keepWd = wdSel.value;
      wdSel.textContent = "";
      for (const t of [...state.tokens.values()].sort((a, b) => a.index - b.index)) {
        const o = el("option", "", t.symbol);
        o.value = String(t.index);
        wdSel.append(o);
      }
      if (keepWd) wdSel.value = keepWd;
    }
    const plan = w.withdrawal;
    const wdToken = withdrawToken();
    const fresh = plan && wdToken && plan.token === wdToken.symbol ? plan : null;
    $("f-withdraw").querySelector('[data-route="withdraw"]').textContent = !fresh
      ? ""
      : fresh.route === "direct"
        ? "· directly from the vault"
        : fresh.route === "permit"
          ? "· with the keeper's permit"
          : "· not now";
    $("f-withdraw").querySelector('[data-hint="withdraw"]').textContent = !fresh
      ? ""
      : fresh.route === "wait"
        ? `Nothing now: ${fresh.reason}.`
        : `Up to ${formatUnitsExact(fresh.available, wdToken.decimals)} ${wdToken.symbol} now: ${fresh.reason}.`;

    // Broker catalogue, unavailable entries shown with their reason rather than hidden.
    const brokerSel = $("f-broker").elements.brokerId;
    const keep = brokerSel.value;
    brokerSel.textContent = "";
    for (const [kind, label] of [
      ["ai", "AI brokers"],
      ["rule", "Rule-based (no key needed)"],
    ]) {
      const group = el("optgroup");
      group.label = label;
      for (const b of state.brokers.values()) {
        if ((b.kind ?? "rule") !== kind) continue;
        const o = el("option", "", b.available === false ? `${b.name} (unavailable: ${b.reason ?? "not configured"})` : b.name);
        o.value = b.id;
        o.disabled = b.available === false;
        group.append(o);
      }
      if (group.children.length) brokerSel.append(group);
    }
    brokerSel.value = keep || view?.broker || brokerSel.querySelector("option:not([disabled])")?.value || "";
    const current = state.brokers.get(view?.broker);
    $("f-broker").querySelector('[data-current="broker"]').textContent = view?.broker ? `· now ${current?.name ?? view.broker}` : "· none yet";
    const chosen = state.brokers.get(brokerSel.value);
    $("f-broker").querySelector('[data-hint="broker"]').textContent = chosen?.description ?? "";

    const checks = $("f-pairs").querySelector(".checks");
    const selected = new Set(view?.pairs ?? []);
    const had = new Map([...checks.querySelectorAll("input")].map((i) => [i.value, i.checked]));
    checks.textContent = "";
    for (const ps of state.pairs.values()) {
      const label = el("label", "check");
      const input = el("input");
      input.type = "checkbox";
      input.name = "pair";
      input.value = ps.pair.symbol;
      input.checked = had.has(ps.pair.symbol) ? had.get(ps.pair.symbol) : selected.has(ps.pair.symbol);
      label.append(input, el("span", "", ps.pair.symbol));
      checks.append(label);
    }
    const phase = state.session?.phase;
    $("f-pairs").querySelector("h3 .hint").textContent = phase === "pre_session" ? "open now, until trading starts" : `pre-session only (the pit is ${phase ?? "…"})`;

    const used = view?.repromptUsed === true;
    const rp = $("f-reprompt");
    rp.querySelector('[data-hint="reprompt"]').textContent = used ? "used this session" : phase === "trading" ? "one per session: available now" : "one per session, while trading";
    rp.querySelector("button").disabled = used || busy;
  }

  /** Makes sure the wallet is on the pit's chain; wallets refuse to sign typed data for another. */
  async function ensureChain(form) {
    await loadEip712();
    const want = expectedChainId();
    let have = await walletChainId();
    if (want !== null && have !== want) {
      setMsg(form, "busy", `Switch your wallet to chain ${want}…`);
      await switchChain(want);
      have = await walletChainId();
      if (have !== want) throw new Error(`your wallet is on chain ${have}, the pit on ${want}`);
      state.wallet.chainId = have;
    }
  }

  async function signAndPost(form, action, fields) {
    const w = state.wallet;
    if (!w) throw new Error("connect your wallet first");
    await ensureChain(form);
    const primaryType = eip712.primaryTypes?.[`/${action}`] ?? eip712.primaryTypes?.[action] ?? PRIMARY_TYPES[action];
    const values = {
      account: w.address,
      ...fields,
      nonce: freshNonce(),
      expiry: Math.floor(serverNow(state) / 1000) + EXPIRY_SEC,
    };
    const typed = typedDataFor(eip712, primaryType, values);
    setMsg(form, "busy", "Sign the request in your wallet…");
    const signature = await signTypedData(w.address, typed);
    setMsg(form, "busy", "Sending to the keeper…");
    return postJSON(`/${action}`, { ...typed.message, signature });
  }

  async function run(form, fn) {
    if (busy) return;
    busy = true;
    setMsg(form, "busy", "Working…");
    for (const b of form.querySelectorAll("button")) b.disabled = true;
    try {
      await fn();
    } catch (err) {
      if (err instanceof KeeperError) {
        setMsg(form, "error", `${err.message}${err.status ? ` (${err.status})` : ""}`, err.field);
      } else setMsg(form, "error", walletMessage(err));
    } finally {
      busy = false;
      for (const b of form.querySelectorAll("button")) b.disabled = false;
      render();
    }
  }

  $("f-broker").addEventListener("submit", (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    run(form, async () => {
      const brokerId = form.elements.brokerId.value;
      if (!brokerId) return setMsg(form, "error", "Choose a broker.", "brokerId");
      await signAndPost(form, "set-broker", { brokerId });
      setMsg(form, "ok", `Broker set: ${state.brokers.get(brokerId)?.name ?? brokerId}.`);
      await refresh();
    });
  });
  $("f-broker").elements.brokerId.addEventListener("change", render);
  $("f-deposit").elements.token.addEventListener("change", render);
  $("f-withdraw").elements.token.addEventListener("change", () => {
    render();
    void refreshWithdrawal();
  });
  $("f-withdraw").querySelector('[data-fill="all"]').addEventListener("click", async () => {
    const form = $("f-withdraw");
    const token = withdrawToken();
    const plan = await loadWithdrawal(token);
    render();
    form.elements.amount.value = plan && plan.route !== "wait" && plan.available > 0n ? formatUnitsExact(plan.available, token.decimals) : "";
  });

  for (const [id, action] of [
    ["f-prompt", "set-prompt"],
    ["f-reprompt", "reprompt"],
  ]) {
    const form = $(id);
    const area = form.elements.prompt;
    const count = form.querySelector("[data-count]");
    area.addEventListener("input", () => count && (count.textContent = `${area.value.length} / 4000`));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      run(form, async () => {
        const prompt = area.value.trim();
        if (!prompt) return setMsg(form, "error", "Write a prompt first.", "prompt");
        await signAndPost(form, action, { prompt });
        setMsg(form, "ok", action === "reprompt" ? "Re-prompt sent: your broker reads it on its next tick." : "Prompt saved. It stays private unless it makes the top 10.");
        await refresh();
      });
    });
  }

  $("f-pairs").addEventListener("submit", (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    run(form, async () => {
      const pairs = [...form.querySelectorAll('input[name="pair"]:checked')].map((i) => i.value);
      if (pairs.length === 0) return setMsg(form, "error", "Choose at least one pair.", "pairs");
      await signAndPost(form, "set-pairs", { pairs });
      setMsg(form, "ok", `Pairs set: ${pairs.join(", ")}.`);
      await refresh();
    });
  });

  $("f-deposit").addEventListener("submit", (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    run(form, async () => {
      const w = state.wallet;
      const token = state.tokens.get(Number(form.elements.token.value));
      const vault = eip712?.domain?.verifyingContract ?? state.session?.vault;
      if (!token || !vault) return setMsg(form, "error", "The keeper has not published the vault or its tokens yet.");
      const parsed = parseUnits(form.elements.amount.value, token.decimals);
      if (parsed.error) return setMsg(form, "error", `Amount: ${parsed.error}.`, "amount");
      const amount = parsed.value;
      const held = w.walletBalances.get(token.index);
      if (held !== undefined && held < amount) {
        return setMsg(form, "error", `Amount: your wallet holds ${formatUnitsExact(held, token.decimals)} ${token.symbol}.`, "amount");
      }
      await ensureChain(form);
      setMsg(form, "busy", "Checking allowance…");
      const allowance = await callUint(token.address, encodeCall("allowance", [w.address, vault]));
      if (allowance < amount) {
        setMsg(form, "busy", `Approve ${token.symbol} for the vault in your wallet…`);
        const approveHash = await sendTransaction({ from: w.address, to: token.address, data: encodeCall("approve", [vault, amount]) });
        setMsg(form, "busy", `Waiting for the approval ${approveHash.slice(0, 10)}…`);
        await waitForReceipt(approveHash);
      }
      setMsg(form, "busy", "Confirm the deposit in your wallet…");
      const hash = await sendTransaction({ from: w.address, to: vault, data: encodeCall("deposit", [token.address, amount]) });
      setMsg(form, "busy", `Waiting for the deposit ${hash.slice(0, 10)}…`);
      await waitForReceipt(hash);
      setMsg(form, "ok", `Deposited ${formatUnitsExact(amount, token.decimals)} ${token.symbol}. The keeper credits it once the block is confirmed.`);
      form.elements.amount.value = "";
      await refresh();
      // The keeper sees the deposit a few blocks later: look again shortly.
      for (const ms of [2000, 5000, 10000]) setTimeout(() => void refresh(), ms);
    });
  });

  // Withdraw: the keeper says which way applies now and how much (GET /api/accounts/:address/withdrawal);
  // the page asks again just before sending, then takes that way.
  $("f-withdraw").addEventListener("submit", (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    run(form, async () => {
      const w = state.wallet;
      const token = withdrawToken();
      const vault = eip712?.domain?.verifyingContract ?? state.session?.vault;
      if (!token || !vault) return setMsg(form, "error", "The keeper has not published the vault or its tokens yet.");
      const parsed = parseUnits(form.elements.amount.value, token.decimals);
      if (parsed.error) return setMsg(form, "error", `Amount: ${parsed.error}.`, "amount");
      const amount = parsed.value;
      const show = (v) => `${formatUnitsExact(v, token.decimals)} ${token.symbol}`;
      await ensureChain(form);
      setMsg(form, "busy", "Asking the keeper what can leave now…");
      const plan = await loadWithdrawal(token);
      if (!plan) return setMsg(form, "error", "The keeper cannot say what can be withdrawn now: try again shortly.");
      if (plan.route === "wait") return setMsg(form, "error", `Nothing can be withdrawn now: ${plan.reason}.`);
      if (amount > plan.available) return setMsg(form, "error", `Amount: up to ${show(plan.available)} now (${plan.reason}).`, "amount");
      let hash;
      let permit = null;
      if (plan.route === "direct") {
        setMsg(form, "busy", "Confirm the withdrawal in your wallet…");
        hash = await sendTransaction({ from: w.address, to: vault, data: encodeCall("withdraw", [token.address, amount]) });
      } else {
        ({ permit } = await signAndPost(form, "withdrawal-permit", { token: token.address, amount: amount.toString() }));
        setMsg(form, "busy", "Confirm the withdrawal in your wallet…");
        const data = encodeCall("withdrawWithPermit", [token.address, amount, w.address, permit.nonce, permit.deadline, bytesArg(permit.signature)]);
        hash = await sendTransaction({ from: w.address, to: permit.vault, data });
      }
      setMsg(form, "busy", `Waiting for the withdrawal ${hash.slice(0, 10)}…`);
      await waitForReceipt(hash);
      setMsg(form, "ok", permit ? `Withdrew ${show(amount)} with the keeper's permit (session ${permit.sessionId}).` : `Withdrew ${show(amount)} from the vault.`);
      form.elements.amount.value = "";
      await refresh();
      // The keeper sees the withdrawal a few blocks later: look again shortly.
      for (const ms of [2000, 5000]) setTimeout(() => void refresh(), ms);
    });
  });

  const eth = provider();
  if (eth?.on) {
    eth.on("accountsChanged", (accounts) => {
      if (Array.isArray(accounts) && accounts[0]) void setAccount(accounts[0]);
      else {
        state.wallet = null;
        button.textContent = "Connect wallet";
        button.classList.remove("connected");
        accountEl.hidden = true;
        onChange();
      }
    });
    eth.on("chainChanged", () => void refresh());
  }
  // A wallet that already trusts this site reconnects silently (no prompt).
  void authorisedAccount().then((a) => a && setAccount(a));

  return {
    refresh,
    scheduleRefresh,
    refreshWithdrawal,
    render,
    /** A fill or order touching the connected account: its balances moved. */
    touches(who) {
      const w = state.wallet;
      if (!w) return false;
      if (typeof who === "number") return w.accountId !== null && who === w.accountId;
      return typeof who === "string" && who.toLowerCase() === w.address.toLowerCase();
    },
  };
}
