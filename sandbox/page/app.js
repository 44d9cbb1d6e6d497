// The Touchpoint sandbox page: a Telegram-like group chat over the Bot API emulator.
// Plain JavaScript, no framework, nothing loaded from elsewhere. Text from the bot is drawn from
// its `text` + `entities` into DOM nodes (never innerHTML); entity offsets are UTF-16 code units,
// which is exactly how JavaScript strings index.
"use strict";

const S = {
  lang: null,
  texts: {},
  people: [],
  members: [],
  group: null,
  zone: "Asia/Shanghai",
  me: "agent",
  chat: "group",
  version: 0,
  pollToken: 0,
  poll: null,
  messages: new Map(), // message_id → {data, el}
  replyTo: null, // {message_id, name}
  dismissedReply: 0,
  placeholder: "",
  commands: [],
  suggestion: -1,
  customer: null,
};

const $ = (id) => document.getElementById(id);
const EVENT_KINDS = ["created", "paid", "shipped", "signed", "review"];
const ADVANCE_MINUTES = [5, 15, 30];
const AVATAR_COLORS = ["#e17076", "#7bc862", "#65aadd", "#a695e7", "#ee7aae", "#6ec9cb", "#faa774"];

// ------------------------------------------------------------------------------------ helpers

function t(key, values) {
  let text = S.texts[key] ?? key;
  for (const [name, value] of Object.entries(values || {})) text = text.split(`{${name}}`).join(String(value));
  return text;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

class ApiError extends Error {
  constructor(body) {
    super(body && body.error ? body.error : "error");
    this.code = (body && body.code) || "bad_request";
  }
}

async function api(path, { body, signal } = {}) {
  const init = { signal, headers: {} };
  if (body !== undefined) {
    init.method = "POST";
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(data);
  return data;
}

function explain(error) {
  if (error instanceof ApiError) {
    const known = { not_ready: "error_not_ready", no_order: "error_no_order", not_member: "error_not_member" };
    if (known[error.code]) return t(known[error.code]);
    return t("error_generic", { error: error.message });
  }
  return t("offline");
}

function person(key) {
  return S.people.find((p) => p.key === key);
}

function meUser() {
  return person(S.me);
}

function avatar(name, id) {
  const node = el("div", "avatar", (name || "?").slice(0, 1));
  node.style.background = AVATAR_COLORS[Math.abs(id || 0) % AVATAR_COLORS.length];
  return node;
}

function fullName(from) {
  return [from.first_name, from.last_name].filter(Boolean).join(" ");
}

function timeOf(seconds) {
  if (!seconds) return "";
  return new Intl.DateTimeFormat(S.lang === "en" ? "en-GB" : "zh-CN", {
    timeZone: S.zone, hour: "2-digit", minute: "2-digit", hourCycle: "h23",
  }).format(new Date(seconds * 1000));
}

// ------------------------------------------------------------------------------------ toasts

function toast(text, kind = "info") {
  const node = el("div", `toast toast-${kind}`, text);
  $("toasts").append(node);
  setTimeout(() => node.classList.add("leaving"), 3200);
  setTimeout(() => node.remove(), 3600);
}

function alertBox(text) {
  $("alert-text").textContent = text;
  $("alert").hidden = false;
  $("alert-ok").focus();
}

// ------------------------------------------------------------------------------------ entities → DOM

const SAFE_PROTOCOLS = new Set(["http:", "https:", "mailto:"]);

function safeUrl(url) {
  try {
    const parsed = new URL(url);
    return SAFE_PROTOCOLS.has(parsed.protocol) ? parsed.href : null;
  } catch {
    return null;
  }
}

function link(href, className) {
  const a = el("a", className);
  a.href = href;
  a.target = "_blank";
  a.rel = "noopener noreferrer";
  return a;
}

function entityNode(entity, text) {
  const piece = text.slice(entity.offset, entity.offset + entity.length);
  switch (entity.type) {
    case "bold": return el("strong");
    case "italic": return el("em");
    case "underline": return el("u");
    case "strikethrough": return el("s");
    case "code": return el("code");
    case "pre": {
      const pre = el("pre");
      if (entity.language) pre.dataset.language = entity.language;
      return pre;
    }
    case "blockquote":
    case "expandable_blockquote": return el("blockquote");
    case "spoiler": {
      const span = el("span", "spoiler");
      span.addEventListener("click", () => span.classList.add("revealed"));
      return span;
    }
    case "text_link": {
      if (/^tg:\/\/user\?id=\d+$/.test(entity.url || "")) return el("span", "mention");
      const href = safeUrl(entity.url);
      return href ? link(href, "") : el("span");
    }
    case "url": {
      const href = safeUrl(/^[a-z]+:\/\//i.test(piece) ? piece : `http://${piece}`);
      return href ? link(href, "") : el("span");
    }
    case "email": return link(`mailto:${piece}`, "");
    case "mention":
    case "text_mention":
    case "hashtag":
    case "cashtag":
    case "phone_number": return el("span", "mention");
    case "bot_command": {
      const span = el("span", "command");
      span.addEventListener("click", () => sendText(piece.split("@")[0]));
      return span;
    }
    default: return el("span");
  }
}

function renderEntities(text, entities) {
  const fragment = document.createDocumentFragment();
  const valid = (entities || [])
    .filter((e) => Number.isInteger(e.offset) && Number.isInteger(e.length) && e.length > 0
      && e.offset >= 0 && e.offset + e.length <= text.length)
    .sort((a, b) => a.offset - b.offset || b.length - a.length);
  const stack = [{ node: fragment, end: text.length }];
  let pos = 0;
  const top = () => stack[stack.length - 1];
  const emit = (until) => {
    if (until > pos) top().node.append(document.createTextNode(text.slice(pos, until)));
    pos = Math.max(pos, until);
  };
  for (const entity of valid) {
    while (stack.length > 1 && top().end <= entity.offset) {
      emit(top().end);
      stack.pop();
    }
    emit(entity.offset);
    const node = entityNode(entity, text);
    top().node.append(node);
    stack.push({ node, end: Math.min(entity.offset + entity.length, top().end) });
  }
  while (stack.length) {
    emit(top().end);
    stack.pop();
  }
  return fragment;
}

// ------------------------------------------------------------------------------------ messages

function mentionsMe(m) {
  const me = meUser();
  if (!m.force_reply.selective) return true;
  if (m.reply_to && m.reply_to.from_id === me.id) return true;
  return (m.entities || []).some((e) =>
    (e.type === "text_mention" && e.user && e.user.id === me.id) ||
    (e.type === "text_link" && e.url === `tg://user?id=${me.id}`));
}

function renderMessage(m) {
  const me = meUser();
  const own = m.from.id === me.id;
  const row = el("div", `msg ${own ? "own" : "other"}${m.from.is_bot ? " from-bot" : ""}`);
  row.dataset.id = m.message_id;
  if (!own) row.append(avatar(m.from.first_name, m.from.id));
  const column = el("div", "msg-column");
  const bubble = el("div", "bubble");
  if (!own && S.chat === "group") {
    const sender = el("div", "sender", fullName(m.from));
    sender.style.color = AVATAR_COLORS[Math.abs(m.from.id) % AVATAR_COLORS.length];
    if (m.from.is_bot) sender.append(el("span", "bot-tag", t("bot")));
    bubble.append(sender);
  }
  if (m.reply_to) {
    const quote = el("div", "quote");
    quote.append(el("div", "quote-name", m.reply_to.from_name), el("div", "quote-text", m.reply_to.text));
    quote.addEventListener("click", () => scrollToMessage(m.reply_to.message_id));
    bubble.append(quote);
  }
  if (m.photo_url) {
    const img = el("img", "photo");
    img.src = m.photo_url;
    img.alt = t("photo");
    img.addEventListener("load", () => keepAtBottom());
    bubble.append(img);
  }
  if (m.document) {
    const doc = link(m.document.url, "document");
    doc.textContent = `📄 ${m.document.name}`;
    bubble.append(doc);
  }
  if (m.text) {
    const body = el("div", "text");
    body.append(renderEntities(m.text, m.entities));
    bubble.append(body);
  }
  const meta = el("div", "meta");
  if (m.edited) meta.append(el("span", "edited", t("edited")));
  meta.append(el("span", "time", timeOf(m.date)));
  bubble.append(meta);
  bubble.addEventListener("dblclick", () => setReply(m));
  column.append(bubble);
  if (m.keyboard) column.append(renderKeyboard(m));
  row.append(column);
  return row;
}

function renderKeyboard(m) {
  const keyboard = el("div", "keyboard");
  for (const buttons of m.keyboard) {
    const line = el("div", "kb-row");
    for (const button of buttons) {
      let node;
      if (button.url) {
        node = link(button.url, "kb-button");
        node.textContent = `${button.text} ↗`;
      } else {
        node = el("button", "kb-button", button.text);
        node.type = "button";
        if (button.data === undefined) node.disabled = true;
        else node.addEventListener("click", () => press(m.message_id, button.data, node));
      }
      line.append(node);
    }
    keyboard.append(line);
  }
  return keyboard;
}

function nearBottom() {
  const box = $("messages");
  return box.scrollHeight - box.scrollTop - box.clientHeight < 120;
}

function keepAtBottom() {
  if (S.stickToBottom) $("messages").scrollTop = $("messages").scrollHeight;
}

function scrollToMessage(id) {
  const entry = S.messages.get(id);
  if (!entry) return;
  entry.el.scrollIntoView({ block: "center", behavior: "smooth" });
  entry.el.classList.add("flash");
  setTimeout(() => entry.el.classList.remove("flash"), 1200);
}

function applyMessages(list) {
  S.stickToBottom = nearBottom() || S.messages.size === 0;
  const box = $("messages");
  for (const m of list) {
    const known = S.messages.get(m.message_id);
    if (m.deleted) {
      if (known) known.el.remove();
      S.messages.delete(m.message_id);
      continue;
    }
    const node = renderMessage(m);
    if (known) {
      known.el.replaceWith(node); // an edit: the same place in the list
    } else {
      const later = [...S.messages.keys()].filter((id) => id > m.message_id).sort((a, b) => a - b)[0];
      if (later !== undefined) box.insertBefore(node, S.messages.get(later).el);
      else box.append(node);
    }
    S.messages.set(m.message_id, { data: m, el: node });
  }
  $("empty")?.remove();
  if (S.messages.size === 0) {
    const empty = el("div", "empty", t("empty_chat"));
    empty.id = "empty";
    box.append(empty);
  }
  followForceReply();
  keepAtBottom();
}

// The bot's note and edit flows ask for a reply (ForceReply): answer the latest such request that
// names me, unless I have written since or dismissed it.
function followForceReply() {
  const me = meUser();
  const ids = [...S.messages.keys()].sort((a, b) => b - a);
  for (const id of ids) {
    const m = S.messages.get(id).data;
    if (m.from.id === me.id) return;
    if (m.force_reply && mentionsMe(m)) {
      if (id !== S.dismissedReply && (!S.replyTo || S.replyTo.message_id !== id)) {
        setReply(m, m.force_reply.placeholder);
      }
      return;
    }
  }
}

function setReply(m, placeholder = "") {
  S.replyTo = { message_id: m.message_id, name: fullName(m.from) };
  $("reply-text").textContent = t("replying_to", { name: S.replyTo.name });
  $("reply-chip").hidden = false;
  $("input").placeholder = placeholder || t("composer");
  $("input").focus();
}

function clearReply(dismissed) {
  if (dismissed && S.replyTo) S.dismissedReply = S.replyTo.message_id;
  S.replyTo = null;
  $("reply-chip").hidden = true;
  $("input").placeholder = t("composer");
}

// ------------------------------------------------------------------------------------ feed

async function pollFeed(token) {
  while (token === S.pollToken) {
    S.poll = new AbortController();
    const query = new URLSearchParams({ as: S.me, chat: S.chat, after_version: S.version, timeout: 25 });
    try {
      const feed = await api(`/sandbox/api/feed?${query}`, { signal: S.poll.signal });
      if (token !== S.pollToken) return;
      $("offline").hidden = true;
      S.version = feed.version;
      if (feed.messages.length || S.messages.size === 0) applyMessages(feed.messages);
      if (feed.messages.length) refreshOutboxSoon();
    } catch (error) {
      if (token !== S.pollToken) return;
      $("offline").textContent = t("offline");
      $("offline").hidden = false;
      await sleep(1000);
    }
  }
}

function restartFeed() {
  S.pollToken += 1;
  if (S.poll) S.poll.abort();
  S.version = 0;
  S.messages.clear();
  $("messages").replaceChildren();
  clearReply(false);
  S.dismissedReply = 0;
  pollFeed(S.pollToken);
}

// ------------------------------------------------------------------------------------ acting

async function sendText(text) {
  const body = { as: S.me, chat: S.chat, text };
  if (S.replyTo) body.reply_to_message_id = S.replyTo.message_id;
  try {
    await api("/sandbox/api/send", { body });
    clearReply(false);
    return true;
  } catch (error) {
    toast(explain(error), "error");
    return false;
  }
}

async function press(messageId, data, button) {
  button.classList.add("pending");
  try {
    const result = await api("/sandbox/api/press", {
      body: { as: S.me, chat: S.chat, message_id: messageId, data },
    });
    const answer = result.answer;
    if (!answer) toast(t("no_answer"), "error");
    else if (answer.text && answer.show_alert) alertBox(answer.text);
    else if (answer.text) toast(answer.text);
  } catch (error) {
    toast(explain(error), "error");
  } finally {
    button.classList.remove("pending");
  }
}

// ------------------------------------------------------------------------------------ composer

function currentSuggestions() {
  const value = $("input").value;
  if (!/^\/\w*$/.test(value)) return [];
  const typed = value.slice(1).toLowerCase();
  return S.commands.filter((c) => c.command.startsWith(typed));
}

function showSuggestions() {
  const list = $("suggestions");
  const found = currentSuggestions();
  list.replaceChildren();
  list.hidden = found.length === 0;
  if (S.suggestion >= found.length) S.suggestion = found.length - 1;
  found.forEach((c, index) => {
    const item = el("li", `suggestion${index === S.suggestion ? " active" : ""}`);
    item.setAttribute("role", "option");
    item.dataset.command = c.command;
    item.append(el("span", "suggestion-command", `/${c.command}`), el("span", "suggestion-text", c.description));
    item.addEventListener("mousedown", (event) => {
      event.preventDefault();
      complete(c.command);
    });
    list.append(item);
  });
}

function complete(command) {
  $("input").value = `/${command} `;
  S.suggestion = -1;
  showSuggestions();
  $("input").focus();
}

async function submitComposer() {
  const input = $("input");
  const text = input.value.trim();
  if (!text) return;
  input.disabled = true;
  const sent = await sendText(text);
  input.disabled = false;
  if (sent) input.value = "";
  autosize();
  showSuggestions();
  input.focus();
}

function autosize() {
  const input = $("input");
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
}

function wireComposer() {
  const input = $("input");
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    submitComposer();
  });
  input.addEventListener("input", () => {
    S.suggestion = -1;
    autosize();
    showSuggestions();
  });
  input.addEventListener("keydown", (event) => {
    const found = currentSuggestions();
    if (found.length && (event.key === "ArrowDown" || event.key === "ArrowUp")) {
      event.preventDefault();
      const step = event.key === "ArrowDown" ? 1 : -1;
      S.suggestion = (S.suggestion + step + found.length) % found.length;
      showSuggestions();
    } else if (found.length && (event.key === "Tab" || (event.key === "Enter" && S.suggestion >= 0))) {
      event.preventDefault();
      complete(found[Math.max(S.suggestion, 0)].command);
    } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submitComposer();
    } else if (event.key === "Escape") {
      if (S.replyTo) clearReply(true);
      $("suggestions").hidden = true;
    }
  });
  $("reply-cancel").addEventListener("click", () => clearReply(true));
  $("alert-ok").addEventListener("click", () => { $("alert").hidden = true; });
}

// ------------------------------------------------------------------------------------ who, where

function renderPeople() {
  const box = $("people");
  box.replaceChildren();
  for (const p of S.people) {
    const button = el("button", `person${p.key === S.me ? " active" : ""}`);
    button.type = "button";
    button.dataset.who = p.key;
    const label = el("span", "person-label");
    label.append(el("span", "person-name", p.name), el("span", "person-role", t(`role_${p.key}`)));
    button.append(avatar(p.name, p.id), label);
    button.addEventListener("click", () => switchTo(p.key, S.chat));
    box.append(button);
  }
}

function renderChats() {
  const box = $("chats");
  box.replaceChildren();
  const entries = [
    { key: "group", title: S.group.title, sub: t("members", { n: S.members.length }), id: S.group.id },
    { key: "private", title: S.bot ? S.bot.name : "", sub: t("private_chat"), id: S.bot ? S.bot.id : 0 },
  ];
  for (const entry of entries) {
    const button = el("button", `chat-entry${entry.key === S.chat ? " active" : ""}`);
    button.type = "button";
    button.dataset.chat = entry.key;
    const label = el("span", "chat-label");
    label.append(el("span", "chat-name", entry.title), el("span", "chat-hint", entry.sub));
    button.append(avatar(entry.title, entry.id), label);
    button.addEventListener("click", () => switchTo(S.me, entry.key));
    box.append(button);
    if (entry.key === S.chat) {
      $("chat-title").textContent = entry.title;
      $("chat-sub").textContent = entry.sub;
      $("chat-avatar").replaceWith(Object.assign(avatar(entry.title, entry.id), { id: "chat-avatar" }));
    }
  }
}

function renderAccess() {
  const me = meUser();
  const outside = S.chat === "group" && !S.members.includes(me.id);
  $("notice").hidden = !outside;
  $("notice").textContent = outside ? t("not_member", { name: me.name }) : "";
  $("composer").hidden = outside;
}

async function loadCommands() {
  try {
    S.commands = await api(`/sandbox/api/commands?${new URLSearchParams({ as: S.me })}`);
  } catch {
    S.commands = [];
  }
}

async function switchTo(who, chat) {
  const sameChat = chat === S.chat && (chat === "group" || who === S.me);
  S.me = who;
  S.chat = chat;
  const url = new URL(location.href);
  url.searchParams.set("as", who);
  url.searchParams.set("chat", chat);
  history.replaceState(null, "", url);
  await loadState();
  renderPeople();
  renderChats();
  renderAccess();
  loadCommands();
  if (sameChat) {
    // Same messages, another reader: redraw who is "me", keep the feed running.
    const all = [...S.messages.values()].map((entry) => entry.data);
    S.messages.clear();
    $("messages").replaceChildren();
    clearReply(false);
    S.dismissedReply = 0;
    applyMessages(all);
  } else {
    restartFeed();
  }
}

// ------------------------------------------------------------------------------------ side panel

function renderClock(clock) {
  $("clock-now").textContent = clock.now;
  $("clock-pill").textContent = `🕒 ${clock.now.slice(11)}`;
  $("clock-offset").textContent = clock.offset_minutes
    ? t("clock_ahead", { n: clock.offset_minutes })
    : t("clock_real");
}

async function advance(minutes, button) {
  button.disabled = true;
  try {
    renderClock(await api("/sandbox/api/clock", { body: { minutes } }));
    toast(t("clock_moved", { n: minutes }));
  } catch (error) {
    toast(explain(error), "error");
  } finally {
    button.disabled = false;
  }
}

async function searchCustomers() {
  const q = $("customer-search").value.trim();
  try {
    const found = await api(`/sandbox/api/customers?${new URLSearchParams({ q })}`);
    if (q !== $("customer-search").value.trim()) return; // a newer search is on its way
    const list = $("customers");
    list.replaceChildren();
    if (!found.length) list.append(el("li", "muted", t("no_customer")));
    for (const c of found) {
      const item = el("li", `customer${S.customer && S.customer.customer_id === c.customer_id ? " active" : ""}`);
      item.dataset.customerId = c.customer_id;
      item.tabIndex = 0;
      item.append(
        el("span", "customer-name", [c.nickname, c.name].filter(Boolean).join(" · ")),
        el("span", "customer-detail", [c.phone, c.customer_id].filter(Boolean).join(" · ")),
      );
      const pick = () => {
        S.customer = c;
        for (const other of list.children) other.classList.toggle("active", other === item);
      };
      item.addEventListener("click", pick);
      item.addEventListener("keydown", (event) => { if (event.key === "Enter") pick(); });
      list.append(item);
    }
  } catch (error) {
    toast(explain(error), "error");
  }
}

async function fireEvent(kind, button) {
  if (!S.customer) {
    toast(t("pick_customer"), "error");
    return;
  }
  button.disabled = true;
  try {
    const result = await api("/sandbox/api/events", { body: { customer_id: S.customer.customer_id, kind } });
    const who = result.customer.nickname || result.customer.name || result.customer.customer_id;
    toast(t("event_sent", { event: t(`event_${kind}`), order: result.order_no, customer: who }));
  } catch (error) {
    toast(explain(error), "error");
  } finally {
    button.disabled = false;
  }
}

let outboxTimer = null;
function refreshOutboxSoon() {
  clearTimeout(outboxTimer);
  outboxTimer = setTimeout(refreshOutbox, 400);
}

async function refreshOutbox() {
  try {
    const deliveries = await api("/sandbox/api/outbox");
    const list = $("outbox");
    list.replaceChildren();
    if (!deliveries.length) list.append(el("li", "muted", t("outbox_empty")));
    for (const d of deliveries) {
      const item = el("li", "delivery");
      item.append(el("div", "delivery-head", [d.to, d.order_no].filter(Boolean).join(" · ")),
        el("div", "delivery-text", d.text));
      list.append(item);
    }
  } catch {
    // the feed shows the connection state
  }
}

function renderPanel() {
  $("clock-title").textContent = t("clock");
  const clockButtons = $("clock-buttons");
  clockButtons.replaceChildren();
  for (const minutes of ADVANCE_MINUTES) {
    const button = el("button", "action", t("advance", { n: minutes }));
    button.type = "button";
    button.dataset.minutes = minutes;
    button.addEventListener("click", () => advance(minutes, button));
    clockButtons.append(button);
  }
  $("events-title").textContent = t("shop_events");
  $("customer-label").textContent = t("customer");
  $("customer-search").placeholder = t("search");
  const events = $("event-buttons");
  events.replaceChildren();
  for (const kind of EVENT_KINDS) {
    const button = el("button", "action wide", t(`event_${kind}`));
    button.type = "button";
    button.dataset.event = kind;
    button.addEventListener("click", () => fireEvent(kind, button));
    events.append(button);
  }
  $("outbox-title").textContent = t("outbox");
}

// ------------------------------------------------------------------------------------ start

async function loadState() {
  const state = await api(`/sandbox/api/state?${new URLSearchParams({ lang: S.lang || "" })}`);
  S.lang = state.lang;
  S.texts = state.texts;
  S.people = state.people;
  S.members = state.members;
  S.group = state.group;
  S.bot = state.bot;
  S.zone = state.clock.zone;
  S.locales = state.locales;
  renderClock(state.clock);
  return state;
}

function renderChrome() {
  document.documentElement.lang = S.lang === "en" ? "en" : "zh-CN";
  document.title = t("title");
  $("you-are").textContent = t("you_are");
  $("chats-title").textContent = t("chats");
  $("lang-label").textContent = t("language");
  $("send").textContent = t("send");
  $("send").title = t("send");
  $("input").placeholder = t("composer");
  $("input").title = t("reply_hint");
  $("reply-cancel").title = t("cancel_reply");
  $("alert-ok").textContent = t("alert_ok");
  const select = $("lang");
  select.replaceChildren();
  for (const locale of S.locales) {
    const option = el("option", "", locale.name);
    option.value = locale.code;
    option.selected = locale.code === S.lang;
    select.append(option);
  }
}

async function start() {
  const params = new URLSearchParams(location.search);
  S.lang = params.get("lang") || localStorage.getItem("touchpoint-sandbox-lang") || "";
  if (params.get("as")) S.me = params.get("as");
  if (params.get("chat") === "private") S.chat = "private";
  let state = null;
  while (!state) {
    try {
      state = await loadState();
    } catch (error) {
      if (error instanceof ApiError && S.lang) S.lang = ""; // a stale language: ask for the default
      else await sleep(1000);
    }
  }
  if (!person(S.me)) S.me = "agent";
  renderChrome();
  renderPeople();
  renderChats();
  renderAccess();
  renderPanel();
  wireComposer();
  $("lang").addEventListener("change", async () => {
    S.lang = $("lang").value;
    localStorage.setItem("touchpoint-sandbox-lang", S.lang);
    const url = new URL(location.href);
    url.searchParams.set("lang", S.lang);
    history.replaceState(null, "", url);
    await loadState();
    renderChrome();
    renderPeople();
    renderChats();
    renderAccess();
    renderPanel();
    const all = [...S.messages.values()].map((entry) => entry.data);
    S.messages.clear();
    $("messages").replaceChildren();
    applyMessages(all);
    searchCustomers();
    refreshOutbox();
  });
  let searchTimer = null;
  $("customer-search").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(searchCustomers, 200);
  });
  loadCommands();
  searchCustomers();
  refreshOutbox();
  setInterval(async () => {
    try {
      renderClock(await api("/sandbox/api/clock"));
    } catch {
      // shown by the feed
    }
  }, 10000);
  setInterval(refreshOutbox, 10000);
  restartFeed();
  document.body.dataset.ready = "1";
}

document.addEventListener("DOMContentLoaded", start);
