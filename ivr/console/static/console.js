// The agent console page: login, the agent's live call, starting a payment, its live progress
// (server-sent events) and the agent's own history. Every rule is the server's: this script only
// shows what the server says, in Chinese or English.
"use strict";

const TEXT = {
  zh: {
    title: "voicepay 坐席控制台", skip: "跳到主要内容", logout: "退出登录", login_title: "坐席登录",
    agent_id: "坐席工号（分机号）", password: "密码", login: "登录", call_title: "当前通话",
    pay_title: "发起支付", mode: "方式", mode_callback: "回拨持卡人手机",
    mode_oneline: "在当前通话中支付（一线通）",
    mode_talkthrough: "在当前通话中支付，坐席不离开（通话中支付）", merchant_order_id: "商户订单号", amount: "金额（元）",
    description: "商品说明", cardholder_name: "持卡人姓名", id_number: "身份证号",
    mobile: "持卡人手机号", card_number: "卡号", call_language: "语音语言", start: "发起支付",
    progress_title: "支付进度", cancel: "取消支付", retry: "重新发起", history_title: "我的支付记录",
    search_label: "按商户订单号查找", search: "查找", col_time: "时间", col_card: "卡号",
    col_mode: "方式", col_status: "状态", callback: "回拨", oneline: "一线通",
    talkthrough: "通话中支付",
    on_call: (n) => `通话中，来电号码 ${n}`, no_call: "当前没有通话",
    caller_in_ivr: "客户正在支付语音中输入，您已与客户隔离（播放等待音乐）",
    caller_talking_through: "客户正在支付语音中输入，您仍可与客户通话，但听不到按键",
    call_unavailable: "暂时无法查询通话（电话系统无响应）",
    session_ended: "会话已结束，请重新登录。", csrf: "请求被拒绝：请刷新页面。",
    invalid: (field, reason) => `${field}：${reason}`, no_payments: "没有记录",
    summary: (p) => `${p.merchant_order_id} · ¥${p.amount} · 卡号 ${p.card || "—"}`,
    steps: {
      waiting: "订单受理（风控检查）", calling: "呼叫持卡人", ringing: "振铃", answered: "已接听",
      answered_oneline: "客户已进入支付语音，坐席已隔离",
      answered_talkthrough: "客户已进入安全输入，坐席保持通话", confirmed: "持卡人确认支付（按 1）",
      id: "身份证号验证", pin: "密码", expiry: "有效期", cvv2: "安全码（CVV2）",
      authorizing: "授权", result: "结果",
    },
    status: {
      pending: "等待", active: "进行中", done: "完成", failed: "未完成", accepted: "已通过",
      rejected: "未通过", entered: (n) => `已输入 ${n} 位`,
    },
    recording: { paused: "通话录音已暂停（客户在支付语音中）", resumed: "通话录音已恢复",
                 ended: "坐席通话已结束，录音未恢复" },
    ask_again: "重新询问", ask_again_label: (field) => `请客户重新输入${field}`,
    ask_again_pending: "已请求重新输入，客户本次输入结束后重问", asked_again: (n) => `已重新询问 ${n} 次`,
    ask_again_too_late: "重新询问太迟：已发送授权",
    attempt: (n) => `第 ${n} 次`, last_outcome: (o) => `上次：${o}`, rejected_before: (n) => `已拒绝 ${n} 次，重新输入`,
    review: "风控审核中",
    results: {
      approved: (d) => `支付成功，参考号 ${d.rrn}`, declined: (d) => `已拒绝：${reason(d)}`,
      failed: (d) => `支付失败${d.reason ? "：" + reason(d) : ""}`, cancelled: () => "已取消",
      abandoned: () => "持卡人中途挂机，未扣款", refused: () => "持卡人拒绝支付（按 2）",
      expired: () => "多次呼叫未接通，已过期", risk_declined: () => "风控拒绝",
      risk_review: () => "风控审核中",
    },
    retry_hint: "请重新输入卡号和身份证号，然后发起支付。",
    reasons: { "05": "发卡行拒绝", "14": "卡号无效", "51": "余额不足", "54": "卡已过期",
               "55": "密码错误", "61": "超出金额限制", "62": "受限卡", "75": "密码错误次数超限",
               "82": "安全码错误", "91": "发卡行暂不可用", "96": "系统故障" },
  },
  en: {
    title: "voicepay agent console", skip: "Skip to main content", logout: "Log out",
    login_title: "Agent login", agent_id: "Agent id (extension)", password: "Password", login: "Log in",
    call_title: "Your call", pay_title: "Take a payment", mode: "How",
    mode_callback: "Call the cardholder's mobile back", mode_oneline: "In the call I am on now (one-line)",
    mode_talkthrough: "In the call I am on now, staying on the line (talk-through)",
    merchant_order_id: "Merchant order id", amount: "Amount (yuan)", description: "Description",
    cardholder_name: "Cardholder name", id_number: "ID number", mobile: "Cardholder mobile",
    card_number: "Card number", call_language: "Language of the call", start: "Start payment",
    progress_title: "Payment progress", cancel: "Cancel payment", retry: "Try again",
    history_title: "My payments", search_label: "Find by merchant order id", search: "Find",
    col_time: "Time", col_card: "Card", col_mode: "How", col_status: "Status",
    callback: "callback", oneline: "one-line", talkthrough: "talk-through",
    on_call: (n) => `On a call with ${n}`, no_call: "You are not on a call",
    caller_in_ivr: "The caller is keying in the payment IVR; you are held apart (hold music)",
    caller_talking_through: "The caller is keying in the payment IVR; you can still talk, and you hear no key",
    call_unavailable: "Your call cannot be looked up now (the phone system does not answer)",
    session_ended: "Your session has ended: log in again.", csrf: "Request refused: reload the page.",
    invalid: (field, reason) => `${field}: ${reason}`, no_payments: "No payments",
    summary: (p) => `${p.merchant_order_id} · ¥${p.amount} · card ${p.card || "—"}`,
    steps: {
      waiting: "Order accepted (risk check)", calling: "Calling the cardholder", ringing: "Ringing",
      answered: "Answered", answered_oneline: "Caller in the payment IVR, you are held apart",
      answered_talkthrough: "Caller in secure capture, you stay on the line",
      confirmed: "Cardholder confirmed (pressed 1)", id: "ID number check", pin: "PIN",
      expiry: "Expiry date", cvv2: "CVV2", authorizing: "Authorizing", result: "Result",
    },
    status: {
      pending: "pending", active: "in progress", done: "done", failed: "stopped",
      accepted: "accepted", rejected: "rejected", entered: (n) => `${n} digits entered`,
    },
    recording: { paused: "Call recording paused (the caller is in the payment IVR)",
                 resumed: "Call recording resumed",
                 ended: "Call recording ended with your call (not resumed)" },
    ask_again: "Ask again", ask_again_label: (field) => `Ask the caller for the ${field} again`,
    ask_again_pending: "ask again requested, acts when the caller's entry ends",
    asked_again: (n) => `asked again${n > 1 ? " " + n + "×" : ""}`,
    ask_again_too_late: "ask again came too late: already sent for authorization",
    attempt: (n) => `attempt ${n}`, last_outcome: (o) => `last: ${o}`,
    rejected_before: (n) => `rejected ${n}×, keying again`, review: "risk review pending",
    results: {
      approved: (d) => `Approved, reference ${d.rrn}`, declined: (d) => `Declined: ${reason(d)}`,
      failed: (d) => `Failed${d.reason ? ": " + reason(d) : ""}`, cancelled: () => "Cancelled",
      abandoned: () => "The cardholder hung up; nothing was charged",
      refused: () => "The cardholder refused (pressed 2)",
      expired: () => "Not answered after every attempt", risk_declined: () => "Declined by risk control",
      risk_review: () => "Risk review pending",
    },
    retry_hint: "Enter the card and ID numbers again, then start the payment.",
    reasons: {},
  },
};

let lang = localStorage.getItem("voicepay-console-lang") || "zh";
let csrf = "";
let current = null;   // the payment being followed: {id, events}
let lastView = null;  // its latest progress, re-rendered when the language changes
let callTimer = null;
let agentSession = null;  // who is logged in, for the header

const $ = (id) => document.getElementById(id);
const t = () => TEXT[lang];
// The modes in which a payment is taken inside the agent's own call (the form's values).
const IN_CALL_MODES = ["oneline", "talk-through"];
// How a payment was taken, as the texts name it: "callback", "oneline" or "talkthrough".
function kind(p) { return p.oneline_style === "talk-through" ? "talkthrough" : p.mode; }
function reason(d) { return t().reasons[d.response_code] || d.reason || ""; }

function applyLanguage() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.title = t().title;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t()[el.dataset.i18n];
  const other = lang === "zh" ? "en" : "zh";
  $("language").textContent = other === "en" ? "English" : "中文";
  $("language").lang = other === "en" ? "en" : "zh-CN";
  if (lastView) renderProgress(lastView);
  showWho();
}

function notice(message) {
  $("notice").textContent = message || "";
  $("notice").hidden = !message;
}

// Every request: JSON, the session cookie, and the CSRF token on writes. A 401 is a session that
// ended: back to the login form, saying so.
async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (method !== "GET") { headers["Content-Type"] = "application/json"; headers["X-CSRF-Token"] = csrf; }
  const response = await fetch(path, { method, headers, credentials: "same-origin",
                                       body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await response.json().catch(() => ({}));
  // (Only a session that existed can end: the first look at the page just shows the login.)
  if (response.status === 401 && csrf) { showLogin(t().session_ended); }
  if (response.status === 403 && data.error_id === "csrf-refused") { notice(t().csrf); }
  return { status: response.status, data };
}

function showLogin(message) {
  csrf = "";
  clearInterval(callTimer);
  if (current) current.events.close();
  current = null;
  $("work-view").hidden = true;
  $("logout").hidden = true;
  $("who").hidden = true;
  $("login-view").hidden = false;
  notice(message);
  $("agent_id").focus();
}

function showWho() {
  if (!agentSession) return;
  const merchant = agentSession.merchant;
  $("who").textContent = `${agentSession.agent.name} (${agentSession.agent.id}) · ` +
    (lang === "zh" ? merchant.name_zh : merchant.name_en);
}

// Offer only the modes this platform takes (the session names them: talk-through may be off).
function showModes(modes) {
  for (const input of document.querySelectorAll('#order input[name="mode"]')) {
    const offered = modes.includes(input.value);
    input.closest("label").hidden = !offered;
    input.disabled = !offered;
    if (!offered && input.checked) document.querySelector('#order input[value="callback"]').checked = true;
  }
}

function showWork(session) {
  csrf = session.csrf;
  showModes(session.modes);
  $("login-view").hidden = true;
  $("work-view").hidden = false;
  $("logout").hidden = false;
  $("who").hidden = false;
  agentSession = session;
  showWho();
  notice("");
  refreshCall();
  clearInterval(callTimer);
  callTimer = setInterval(refreshCall, 2000);
  loadHistory();
}

async function refreshCall() {
  const { status, data } = await api("GET", "/console/api/call");
  if (status !== 200) return;
  const el = $("call");
  el.dataset.state = data.on_call ? "on-call" : data.reason;
  el.dataset.caller = data.caller_number || "";
  // While a one-line payment runs, the agent is held apart from the caller, or (talk-through)
  // listens to them from outside any bridge: no bridge to show.
  const inIvr = !data.on_call && lastView && lastView.payment.mode === "oneline" && !lastView.payment.final;
  const talking = inIvr && kind(lastView.payment) === "talkthrough";
  if (inIvr) el.dataset.state = talking ? "caller-talking-through" : "caller-in-ivr";
  el.textContent = data.on_call ? t().on_call(data.caller_number)
    : talking ? t().caller_talking_through
    : inIvr ? t().caller_in_ivr
    : (data.reason === "unavailable" ? t().call_unavailable : t().no_call);
  // A caller whose number is a mainland mobile: the likely cardholder's mobile, to confirm.
  if (data.on_call && /^1[0-9]{10}$/.test(data.caller_number || "") &&
      IN_CALL_MODES.includes($("order").mode.value) && !$("mobile").value) {
    $("mobile").value = data.caller_number;
  }
}

function orderFromForm() {
  const form = $("order");
  const order = {};
  for (const el of form.elements) {
    if (!el.name || (el.type === "radio" && !el.checked)) continue;
    order[el.name] = el.value.trim();
  }
  return order;
}

function showFieldError(data) {
  for (const el of document.querySelectorAll("#order .error")) el.textContent = "";
  for (const el of document.querySelectorAll("#order [aria-invalid]")) el.removeAttribute("aria-invalid");
  const parameter = data && data.details && data.details.parameter;
  const input = parameter && $(parameter);
  if (input && $(parameter + "-error")) {
    input.setAttribute("aria-invalid", "true");
    $(parameter + "-error").textContent = data.details.reason;
    return input;
  }
  $("order-error").textContent = data ? (data.message || "") : "";
  return null;
}

// Inline validation by the server's own rules: after a field is left, the whole order is checked
// and the first problem shown if it is about a field already filled in. The form's fields are in
// the order the server checks them, so filling it top to bottom shows each problem as it is made.
async function checkOrder(event) {
  const { status, data } = await api("POST", "/console/api/orders/check", orderFromForm());
  if (status === 200) { showFieldError(null); return; }
  const parameter = data.details && data.details.parameter;
  if (parameter && $(parameter) && ($(parameter).value || parameter === event.target.name)) showFieldError(data);
}

async function startPayment(event) {
  event.preventDefault();
  $("start").disabled = true;
  try {
    const { status, data } = await api("POST", "/console/api/payments", orderFromForm());
    if (status === 401) return;
    const paymentId = data.id || (data.details && data.details.payment_id);
    if (!paymentId) {
      const input = showFieldError(data);
      if (input) input.focus();
      return;
    }
    showFieldError(null);
    // The card and ID numbers leave the page once the order is placed: the rest of the order
    // stays for a retry, for which the agent asks for the card again.
    $("card_number").value = "";
    $("id_number").value = "";
    follow(paymentId);
  } finally {
    $("start").disabled = false;
  }
}

function follow(paymentId) {
  if (current) current.events.close();
  const events = new EventSource(`/console/api/payments/${encodeURIComponent(paymentId)}/events`);
  current = { id: paymentId, events };
  lastView = null;
  $("progress").textContent = "";
  $("progress-view").hidden = false;
  $("progress-view").dataset.payment = paymentId;
  $("progress-title").focus();
  events.onmessage = (message) => {
    const view = JSON.parse(message.data);
    renderProgress(view);
    // The server ends the story too (after a one-line payment, once the recording goes on).
    if (view.payment.final && view.payment.recording !== "paused") { events.close(); loadHistory(); }
  };
  events.onerror = async () => {
    // The stream ends after the final state; otherwise a dropped stream may be a lost session.
    if (lastView && lastView.payment.final) return;
    const { status } = await api("GET", "/console/api/session");
    if (status === 401) events.close();
  };
}

function lineText(line, payment) {
  const T = t();
  let label = T.steps[line.step];
  if (line.step === "answered" && payment.mode === "oneline") label = T.steps[`answered_${kind(payment)}`];
  const d = line.detail || {};
  let state;
  if (line.step === "result" && d.state) state = T.results[d.state] ? T.results[d.state](d) : d.state;
  else if (line.status === "entered") state = T.status.entered(line.digits);
  else state = T.status[line.status];
  const extra = [];
  if (line.digits && line.status !== "entered") extra.push(T.status.entered(line.digits));
  if (d.attempt) extra.push(T.attempt(d.attempt));
  if (d.last_outcome) extra.push(T.last_outcome(d.last_outcome));
  if (d.rejected) extra.push(T.rejected_before(d.rejected));
  if (d.review) extra.push(T.review);
  if (d.ask_again_pending) extra.push(T.ask_again_pending);
  if (d.asked_again) extra.push(T.asked_again(d.asked_again));
  if (d.ask_again_too_late) extra.push(T.ask_again_too_late);
  return `${label}: ${state}${extra.length ? " (" + extra.join(", ") + ")" : ""}`;
}

function renderProgress(view) {
  lastView = view;
  const p = view.payment;
  $("progress-summary").textContent = t().summary(p);
  $("progress-view").dataset.status = p.status;
  $("recording").dataset.state = p.recording || "";
  $("recording").textContent = p.recording ? t().recording[p.recording] : "";
  $("recording").hidden = !p.recording;
  const list = $("progress");
  list.textContent = "";
  for (const line of view.lines) {
    const item = document.createElement("li");
    item.dataset.step = line.step;
    item.dataset.status = line.status;
    item.className = `line ${line.status}`;
    item.textContent = lineText(line, p);
    // "Ask again" on a field the caller is keying or has keyed, until it goes to the acquirer.
    if ((p.ask_again || []).includes(line.step)) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "ask-again";
      button.dataset.field = line.step;
      button.textContent = t().ask_again;
      button.setAttribute("aria-label", t().ask_again_label(t().steps[line.step]));
      button.addEventListener("click", () => askAgain(line.step));
      item.append(" ", button);
    }
    list.appendChild(item);
  }
  $("cancel").hidden = !p.cancellable;
  $("retry").hidden = !(p.final && p.status !== "approved");
}

async function cancelPayment() {
  if (!current) return;
  const { status, data } = await api("POST", `/console/api/payments/${encodeURIComponent(current.id)}/cancel`);
  if (status === 200) renderProgress(data);
  else notice(data.message || "");
}

async function askAgain(field) {
  if (!current) return;
  const { status, data } = await api("POST", `/console/api/payments/${encodeURIComponent(current.id)}/ask-again`, { field });
  // The event stream brings the line that says so (the request is a history entry).
  if (status === 202) notice("");
  else if (status !== 401) notice(data.message || "");
}

async function loadHistory(event) {
  if (event) event.preventDefault();
  const order = $("search-order").value.trim();
  const { status, data } = await api("GET", "/console/api/payments" + (order ? `?order=${encodeURIComponent(order)}` : ""));
  if (status !== 200) return;
  const body = $("history").tBodies[0];
  body.textContent = "";
  if (!data.payments.length) {
    const row = body.insertRow();
    const cell = row.insertCell();
    cell.colSpan = 6;
    cell.textContent = t().no_payments;
  }
  for (const p of data.payments) {
    const row = body.insertRow();
    row.dataset.payment = p.id;
    const when = p.created_at ? new Date(p.created_at).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB") : "";
    for (const value of [when, p.merchant_order_id, p.amount, p.card, t()[kind(p)] || p.mode,
                         t().results[p.status] ? t().results[p.status](p) : p.status]) {
      row.insertCell().textContent = value;
    }
  }
}

async function login(event) {
  event.preventDefault();
  const { status, data } = await api("POST", "/console/api/login", {
    agent_id: $("agent_id").value.trim(), password: $("password").value });
  $("password").value = "";
  if (status === 200) { $("login-error").textContent = ""; showWork(data); return; }
  $("login-error").textContent = data.message || "";
  $("password").focus();
}

async function logout() {
  await api("POST", "/console/api/logout");
  showLogin("");
}

document.addEventListener("DOMContentLoaded", async () => {
  applyLanguage();
  $("language").addEventListener("click", () => {
    lang = lang === "zh" ? "en" : "zh";
    localStorage.setItem("voicepay-console-lang", lang);
    applyLanguage();
    refreshCall();
    loadHistory();
  });
  $("login").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  $("order").addEventListener("submit", startPayment);
  $("order").addEventListener("focusout", (event) => { if (event.target.name && event.target.name !== "mode") checkOrder(event); });
  $("cancel").addEventListener("click", cancelPayment);
  // A retry is a new payment for the same order (still in the form) once the card is keyed again.
  $("retry").addEventListener("click", () => { $("card_number").focus(); notice(t().retry_hint); });
  $("search").addEventListener("submit", loadHistory);
  const { status, data } = await api("GET", "/console/api/session");
  if (status === 200) showWork(data); else showLogin("");
});
