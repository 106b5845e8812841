// The MedView Companion chat page: sign-in, the connection manager, the transcript, the
// conversation list and the message box, wired together. No framework, no build step.

import { Auth } from "./auth.js";
import { Api } from "./api.js";
import { Backoff } from "./backoff.js";
import { ConnectionManager, DEFAULT_OPTIONS, titleFrom } from "./connection.js";
import { ChatView } from "./chat-view.js";
import { ConversationList } from "./conversations.js";
import { newId } from "./ids.js";

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

const params = new URLSearchParams(location.search);
/** `?test=1` exposes window.__medview for the browser tests and lets them tune timings. */
const TEST_MODE = params.get("test") === "1";

const MAX_MESSAGE_CHARACTERS = 8000;
const CONVERSATION_KEY = "medview.conversation";
/** How many of the latest stored answers get their safety events back when a conversation opens. */
const RESTORED_TURNS = 5;

/** Short texts for the status pill; the longer explanation goes above the message box. */
const STATE_TEXT = {
  connecting: "Connecting…",
  live: "Connected",
  reconnecting: "Reconnecting…",
  offline: "Offline",
  fallback: "Connected (backup mode)",
};

const STATE_NOTE = {
  connecting: "",
  live: "",
  reconnecting: "The connection dropped. Reconnecting; answers continue where they stopped.",
  offline: "You are offline. You can keep typing: messages will be sent when the connection is back.",
  fallback: "",
};

const segmenter = typeof Intl.Segmenter === "function" ? new Intl.Segmenter(undefined, { granularity: "grapheme" }) : null;

/** Characters as the server counts them (grapheme clusters). */
function characterCount(text) {
  if (!segmenter) return Array.from(text).length;
  let count = 0;
  for (const _ of segmenter.segment(text)) count += 1;
  return count;
}

function show(id, visible) {
  $(id).hidden = !visible;
}

// ------------------------------------------------------------------------------------ boot

/** Reads /v1/client-config, retrying with backoff while the server cannot be reached. */
async function loadConfig() {
  const backoff = new Backoff({ baseMs: 1000, capMs: 20_000, maxAttempts: Infinity });
  for (;;) {
    try {
      const response = await fetch("/v1/client-config", { cache: "no-store", credentials: "omit" });
      if (response.ok) return await response.json();
    } catch {
      // offline: try again
    }
    $("boot-text").textContent = "Cannot reach MedView right now. Trying again…";
    show("boot-retry", true);
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, backoff.next());
      const now = () => {
        clearTimeout(timer);
        resolve(undefined);
      };
      $("boot-retry").addEventListener("click", now, { once: true });
      window.addEventListener("online", now, { once: true });
    });
    $("boot-text").textContent = "Loading…";
  }
}

function tuning() {
  /** @type {Record<string, number>} */
  const options = {};
  if (!TEST_MODE) return options;
  for (const key of Object.keys(DEFAULT_OPTIONS)) {
    const value = Number(params.get(key));
    if (params.has(key) && Number.isFinite(value) && value > 0) options[key] = value;
  }
  return options;
}

/** /v1/client-config, once loaded. */
let config = {};

async function main() {
  config = await loadConfig();
  const auth = new Auth(config);
  show("boot", false);
  if (typeof config.disclaimer === "string" && config.disclaimer.trim()) $("disclaimer").textContent = config.disclaimer;

  let signInError = "";
  if (auth.mode === "cognito") {
    try {
      await auth.completeCognito();
    } catch (error) {
      signInError = error?.message || "Sign-in did not complete.";
    }
  }
  auth.onEnded((reason) => {
    stopChat?.();
    showSignIn(auth, reason);
  });
  const notice = auth.takeNotice();
  if (auth.session || auth.restore()) startChat(auth, config);
  else showSignIn(auth, signInError || notice, notice ? "idle" : "");
}

// ------------------------------------------------------------------------------------ idle logoff

/** How often the inactivity clock is checked (it compares times, so a late check is still right). */
const IDLE_CHECK_MS = 2000;

/** "15 minutes", "30 seconds". */
function duration(seconds) {
  if (seconds >= 120 && seconds % 60 === 0) return `${seconds / 60} minutes`;
  if (seconds === 60) return "1 minute";
  return `${seconds} seconds`;
}

/**
 * Idle logoff (a patient walks away from a shared computer): after `idleTimeoutSeconds` of
 * client-config with no key press, click, touch, scroll or message from the patient, `onIdle`
 * runs. Keep-alive pings and token refreshes are not activity. Returns a stop function.
 */
function watchInactivity(idleSeconds, onIdle) {
  if (!(idleSeconds > 0)) return () => {};
  let last = Date.now();
  const touch = () => {
    last = Date.now();
  };
  const check = () => {
    if (Date.now() - last >= idleSeconds * 1000) onIdle();
  };
  const onVisible = () => {
    if (document.visibilityState === "visible") check(); // timers sleep with the phone
  };
  const events = ["keydown", "pointerdown", "touchstart", "wheel", "scroll"];
  for (const name of events) document.addEventListener(name, touch, { capture: true, passive: true });
  document.addEventListener("visibilitychange", onVisible);
  const timer = setInterval(check, Math.min(IDLE_CHECK_MS, idleSeconds * 250));
  return () => {
    clearInterval(timer);
    for (const name of events) document.removeEventListener(name, touch, { capture: true });
    document.removeEventListener("visibilitychange", onVisible);
  };
}

// ------------------------------------------------------------------------------------ sign-in

let signInWired = false;

function showSignIn(auth, message = "", reason = "") {
  $("signin").dataset.signedOut = reason;
  // After idle logoff the next person at this computer should not see who was here.
  if (reason === "idle") /** @type {HTMLInputElement} */ ($("dev-user")).value = "";
  show("app", false);
  show("account", false);
  show("reconnect-now", false);
  show("signin", true);
  setConnectionView("offline", false, "Not signed in");
  const error = $("signin-error");
  error.textContent = message;
  error.hidden = !message;
  const development = auth.mode === "development";
  show("dev-signin", development);
  show("cognito-signin", !development);
  if (!development && !auth.cognito) {
    error.textContent = "Sign-in is not configured on this server yet.";
    error.hidden = false;
    /** @type {HTMLButtonElement} */ ($("cognito-button")).disabled = true;
  }
  if (!signInWired) {
    signInWired = true;
    $("dev-signin").addEventListener("submit", async (event) => {
      event.preventDefault();
      const input = /** @type {HTMLInputElement} */ ($("dev-user"));
      const user = input.value.trim();
      if (!input.checkValidity() || !user) {
        error.textContent = "Please enter a user name: letters, digits and - _ . @ only.";
        error.hidden = false;
        input.focus();
        return;
      }
      const button = /** @type {HTMLButtonElement} */ (event.target.querySelector("button[type=submit]"));
      button.disabled = true;
      try {
        await auth.signInDevelopment(user);
        startChat(auth, config);
      } catch (failure) {
        error.textContent = failure instanceof TypeError ? "Cannot reach MedView. Check your connection and try again." : failure.message;
        error.hidden = false;
      } finally {
        button.disabled = false;
      }
    });
    $("cognito-button").addEventListener("click", () => {
      auth.beginCognito().catch((failure) => {
        error.textContent = failure.message;
        error.hidden = false;
      });
    });
  }
  if (development) $("dev-user").focus();
}

// ------------------------------------------------------------------------------------ chat

/** @type {(() => void) | null} */
let stopChat = null;

function setConnectionView(state, manual, text) {
  const box = $("connection");
  box.dataset.connectionState = state;
  box.querySelector(".connection-text").textContent = text ?? STATE_TEXT[state] ?? state;
  show("reconnect-now", manual);
  const note = $("connection-note");
  note.textContent = text === undefined ? STATE_NOTE[state] ?? "" : "";
  note.dataset.state = state;
  note.hidden = !note.textContent;
}

function startChat(auth, config) {
  stopChat?.();
  show("signin", false);
  show("app", true);
  show("account", true);
  $("account-name").textContent = auth.user;

  const api = new Api({ bearer: () => auth.bearer(), renew: () => auth.renew() });
  /** The conversation on screen; `id` is null until the server creates it. */
  let current = { id: /** @type {string | null} */ (null) };
  let loadSeq = 0;
  let titled = false;
  const textarea = /** @type {HTMLTextAreaElement} */ ($("message"));
  const composerNote = $("composer-note");

  const view = new ChatView(
    { transcript: $("transcript"), turns: $("turns"), welcome: $("welcome"), announcer: $("announcer") },
    {
      onStop: (turn) => {
        if (!turn.streamId) {
          if (manager.unqueue(turn.id)) {
            turn.setStatus("cancelled");
            turn.setNote("Not sent.");
          } else {
            turn.stopRequested = true; // cancelled as soon as the server acknowledges it
            turn.stopButton.disabled = true;
          }
          return;
        }
        turn.stopButton.disabled = true;
        turn.stopButton.textContent = "Stopping…";
        manager.cancel(turn.streamId);
      },
      onRetry: (turn) => {
        turn.retried = true;
        turn.retryButton.hidden = true;
        send(turn.question);
      },
    },
  );

  const list = new ConversationList(
    { list: $("conversation-list"), empty: $("conversations-empty"), error: $("conversations-error"),
      dialog: /** @type {HTMLDialogElement} */ ($("confirm-delete")), dialogText: $("confirm-delete-text") },
    {
      api,
      onOpen: (conversation) => openConversation(conversation.id, conversation.title),
      onRefreshed: () => {
        if (current.id && !titled) {
          const title = list.titleOf(current.id);
          if (title) setTitle(title);
        }
      },
      onDeleted: (id) => {
        if (id === current.id) newConversation();
        try {
          if (sessionStorage.getItem(CONVERSATION_KEY) === id) sessionStorage.removeItem(CONVERSATION_KEY);
        } catch {
          // ignore
        }
      },
    },
  );

  /** Called when the server has created the conversation of `conversation` (a new one). */
  const conversationCreated = (conversation) => {
    if (conversation === current && current.id) {
      list.setCurrent(current.id);
      remember(current.id);
    }
    list.refresh();
  };

  const manager = new ConnectionManager({
    auth,
    api,
    options: tuning(),
    handlers: {
      onState: (state, { manual }) => {
        setConnectionView(state, manual);
        view.setConnectionState(state);
      },
      onEvent: (event) => {
        if (event.type === "ack") {
          const turn = view.acknowledged(event);
          if (turn?.stopRequested) manager.cancel(event.streamId);
          if (turn && current.id === event.conversationId && !list.titleOf(current.id)) conversationCreated(current);
          return;
        }
        view.event(event);
        if (event.type === "stream.end" || event.type === "error") list.refreshSoon();
      },
      onSendFailed: (item, error) => view.turns.get(item.id)?.refused(error),
      onSendDelayed: (item, error) => {
        const turn = view.turns.get(item.id);
        if (!turn) return;
        turn.setNote(error?.code === "too_many_streams"
          ? "Several answers are being written at once; yours will start in a moment."
          : "The service is busy; your message will be sent in a moment.", "waiting");
      },
      onConversationCreated: (item) => conversationCreated(item.conversation),
      onIdle: () => signOutForInactivity(),
      onStreamLost: (streamId) => {
        const turn = view.byStream.get(streamId);
        if (!turn || !(turn.status === "streaming" || turn.status === "pending")) return;
        turn.fail({ code: "lost" });
        turn.setNote("This answer was interrupted and cannot be recovered.", "error");
      },
    },
  });

  function remember(id) {
    try {
      if (id) sessionStorage.setItem(CONVERSATION_KEY, id);
      else sessionStorage.removeItem(CONVERSATION_KEY);
    } catch {
      // ignore
    }
  }

  function setTitle(title) {
    titled = Boolean(title);
    $("chat-title").textContent = title || "New conversation";
  }

  function releaseStreams() {
    for (const turn of view.turns.values()) {
      if (turn.streamId && (turn.status === "streaming" || turn.status === "pending")) manager.release(turn.streamId);
    }
  }

  function closeSidebar(returnFocus = false) {
    const wasOpen = $("app").classList.contains("sidebar-open");
    $("app").classList.remove("sidebar-open");
    $("sidebar-toggle").setAttribute("aria-expanded", "false");
    if (wasOpen && returnFocus) $("sidebar-toggle").focus();
  }

  function newConversation() {
    loadSeq += 1;
    releaseStreams();
    view.clear();
    current = { id: null };
    setTitle("");
    list.setCurrent(null);
    remember(null);
    closeSidebar();
    textarea.focus();
  }

  async function openConversation(id, title) {
    closeSidebar();
    if (id === current.id) return;
    const seq = ++loadSeq;
    releaseStreams();
    view.clear();
    current = { id };
    setTitle(title || list.titleOf(id) || "Conversation");
    list.setCurrent(id);
    remember(id);
    const transcript = $("transcript");
    transcript.setAttribute("aria-busy", "true");
    try {
      const answer = await api.messages(id);
      if (seq !== loadSeq) return;
      /** @type {Map<string, {user?: any, assistant?: any}>} */
      const pairs = new Map();
      for (const message of answer.messages || []) {
        const key = message.streamId || message.id;
        const pair = pairs.get(key) || {};
        if (message.role === "user") pair.user = message;
        else pair.assistant = message;
        pairs.set(key, pair);
      }
      const stored = [...pairs.values()];
      stored.forEach(({ user, assistant }, index) => {
        const turn = view.addStored(user, assistant);
        if (!assistant?.streamId) return;
        if (assistant.status === "streaming") {
          manager.follow(assistant.streamId, 0); // still being written: show it live
        } else if (index >= stored.length - RESTORED_TURNS) {
          // REST keeps the text, not the safety events: replay the recent streams for their
          // emergency banners, warnings and demo marker, so they survive a reload.
          turn.restoring = true;
          manager.follow(assistant.streamId, 0);
        }
      });
      transcript.scrollTop = transcript.scrollHeight;
    } catch (error) {
      if (seq !== loadSeq) return;
      if (error?.code === "not_found") {
        newConversation();
        list.refresh();
        return;
      }
      const note = document.createElement("p");
      note.className = "transcript-error";
      note.setAttribute("role", "status");
      note.textContent = "Could not load this conversation. Check your connection and open it again.";
      $("turns").append(note);
      current = { id: null }; // so opening it again retries
      list.setCurrent(null);
    } finally {
      if (seq === loadSeq) transcript.setAttribute("aria-busy", "false");
    }
  }

  function composerMessage(text) {
    composerNote.textContent = text;
    composerNote.hidden = !text;
  }

  function send(text) {
    const id = newId();
    if (!current.id && !titled && view.turns.size === 0) setTitle(titleFrom(text));
    view.add({ id, question: text });
    view.scrollToEnd(); // the patient just asked: show it, even if they had scrolled up
    manager.send({ id, text, conversation: current });
  }

  // ---- composer
  const form = /** @type {HTMLFormElement} */ ($("composer"));
  const onSubmit = (event) => {
    event.preventDefault();
    const text = textarea.value;
    if (!text.trim()) {
      composerMessage("Type your question first.");
      textarea.focus();
      return;
    }
    const count = characterCount(text);
    if (count > MAX_MESSAGE_CHARACTERS) {
      composerMessage(`This message is too long (${count} of ${MAX_MESSAGE_CHARACTERS} characters). Please shorten it.`);
      textarea.focus();
      return;
    }
    composerMessage("");
    textarea.value = "";
    send(text);
    textarea.focus();
  };
  const onKeyDown = (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.altKey && !event.ctrlKey && !event.metaKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  };
  const onInput = () => {
    if (!composerNote.hidden && textarea.value.trim()) composerMessage("");
  };
  form.addEventListener("submit", onSubmit);
  textarea.addEventListener("keydown", onKeyDown);
  textarea.addEventListener("input", onInput);

  // ---- chrome
  const onNew = () => newConversation();
  const onToggle = () => {
    const open = $("app").classList.toggle("sidebar-open");
    $("sidebar-toggle").setAttribute("aria-expanded", String(open));
    if (open) /** @type {HTMLElement | null} */ ($("sidebar").querySelector("button"))?.focus();
  };
  const onReconnect = () => manager.reconnectNow();
  const onCloseSidebar = () => closeSidebar(true);
  const onEscape = (event) => {
    if (event.key === "Escape" && $("app").classList.contains("sidebar-open")) closeSidebar(true);
  };
  const idleSeconds = Number(config?.idleTimeoutSeconds) || 0;
  /** Idle logoff: clear the screen and the tokens; nothing reconnects until someone signs in. */
  function signOutForInactivity() {
    if (!stopChat) return;
    const notice = `You were signed out after ${duration(idleSeconds || 900)} without activity, to keep your conversations private. Sign in to continue.`;
    stopChat();
    if (!auth.signOut(notice)) showSignIn(auth, auth.takeNotice(), "idle");
  }
  const stopIdleWatch = watchInactivity(idleSeconds, signOutForInactivity);
  const onSignOut = () => {
    if (manager.hasUnsent() && !window.confirm("Some messages have not been sent yet. Sign out anyway?")) return;
    stopChat?.();
    auth.signOut();
    showSignIn(auth, "");
  };
  const onBeforeUnload = (event) => {
    if (manager.hasUnsent()) event.preventDefault(); // the browser asks before losing queued messages
  };
  $("new-conversation").addEventListener("click", onNew);
  $("sidebar-toggle").addEventListener("click", onToggle);
  $("reconnect-now").addEventListener("click", onReconnect);
  $("sidebar-close").addEventListener("click", onCloseSidebar);
  document.addEventListener("keydown", onEscape);
  $("sign-out").addEventListener("click", onSignOut);
  window.addEventListener("beforeunload", onBeforeUnload);

  stopChat = () => {
    stopIdleWatch();
    manager.stop();
    form.removeEventListener("submit", onSubmit);
    textarea.removeEventListener("keydown", onKeyDown);
    textarea.removeEventListener("input", onInput);
    $("new-conversation").removeEventListener("click", onNew);
    $("sidebar-toggle").removeEventListener("click", onToggle);
    $("reconnect-now").removeEventListener("click", onReconnect);
    $("sidebar-close").removeEventListener("click", onCloseSidebar);
    document.removeEventListener("keydown", onEscape);
    $("sign-out").removeEventListener("click", onSignOut);
    window.removeEventListener("beforeunload", onBeforeUnload);
    view.clear();
    $("conversation-list").replaceChildren();
    setTitle("");
    stopChat = null;
    if (TEST_MODE) delete window.__medview;
  };

  manager.start();
  list.refresh();
  let saved = null;
  try {
    saved = sessionStorage.getItem(CONVERSATION_KEY);
  } catch {
    saved = null;
  }
  if (saved) openConversation(saved);
  textarea.focus();

  if (TEST_MODE) installTestHooks({ auth, manager, view, current: () => current });
}

// ------------------------------------------------------------------------------------ tests

/** Only with ?test=1: hooks the browser tests use. Nothing here changes what the page does. */
function installTestHooks({ auth, manager, view, current }) {
  window.__medview = {
    state: () => manager.state,
    mode: () => manager.mode,
    stats: () => ({ ...manager.stats, paints: view.scheduler.paints, outbox: manager.outbox.length }),
    conversationId: () => current().id,
    /** Replays recorded events into the renderer, as if they came from the server. */
    async renderEvents(events, { question = "(recorded events)", intervalMs = 0 } = {}) {
      const id = "recorded-" + newId();
      const turn = view.add({ id, question });
      for (const event of events) {
        if (event.type === "ack") {
          view.acknowledged({ ...event, id });
        } else {
          if (!turn.streamId && typeof event.streamId === "string") turn.bindStream(event.streamId);
          manager.inject(event);
        }
        if (intervalMs > 0) await new Promise((resolve) => setTimeout(resolve, intervalMs));
      }
      return id;
    },
    debugDropSocket: () => manager.debugDropSocket(),
    /** Renews the token now; resolves with the `auth.refresh` ack from the open socket. */
    async refreshTokenNow() {
      const before = manager.stats.authRefreshes;
      await auth.renew();
      const deadline = Date.now() + 10_000;
      while (manager.stats.authRefreshes === before && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      return { refreshes: manager.stats.authRefreshes, expiresAt: manager.stats.lastRefreshExpiresAt, tokenExpiresAt: auth.session?.expiresAt };
    },
  };
}

main();
