// The transcript: one "turn" per question and its answer.
//
// Stable hooks (docs/WEB.md): each answer is an element with data-role="assistant",
// data-stream-id and data-status (pending, streaming, complete, cancelled, failed); its text is
// in the child [data-part="text"]. An emergency banner (safety.alert) is a role="alert" element
// placed ABOVE the answer, outside the answer's aria-busy region so it is announced at once.
//
// Chunks only append to a string; the DOM is updated at most once per animation frame for all
// answers together. Screen readers hear a finished answer once, through one polite live
// region, when the stream ends; the streaming answer itself is aria-busy meanwhile.

import { renderMarkdownInto, safeHref, linkElement } from "./markdown.js";
import { newId } from "./ids.js";

const ALERT_SCHEMES = new Set(["tel:", "sms:", "https:"]);

/** @param {string} tag @param {string} [className] @param {string} [text] */
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Batches DOM updates of every streaming answer into one per animation frame. */
class FrameScheduler {
  constructor(onFlush) {
    this.onFlush = onFlush;
    /** @type {Set<Turn>} */
    this.dirty = new Set();
    this.scheduled = false;
    this.timer = 0;
    this.paints = 0;
  }

  mark(turn) {
    this.dirty.add(turn);
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => this.flush());
    // Hidden tabs get no animation frames: make sure the text still lands.
    this.timer = setTimeout(() => this.flush(), 250);
  }

  flush() {
    if (!this.scheduled) return;
    this.scheduled = false;
    clearTimeout(this.timer);
    const turns = [...this.dirty];
    this.dirty.clear();
    this.onFlush(() => {
      for (const turn of turns) turn.paint();
    });
    this.paints += 1;
  }

  /** Paints one turn now (its stream ended) and forgets any pending paint for it. */
  now(turn) {
    this.dirty.delete(turn);
    this.onFlush(() => turn.paint());
  }
}

export class Turn {
  /**
   * @param {ChatView} view
   * @param {{id: string, question: string, status?: string}} init
   */
  constructor(view, { id, question, status = "pending" }) {
    this.view = view;
    this.id = id;
    this.question = question;
    this.text = "";
    this.painted = "";
    this.streamId = "";
    this.status = status;
    this.announced = false;
    /** A stored answer whose stream is replayed only for its safety events and model marker. */
    this.restoring = false;
    this.stopRequested = false;
    this.retried = false;

    this.root = el("article", "turn");
    this.root.dataset.turnId = id;
    const user = el("div", "bubble bubble-user");
    user.dataset.role = "user";
    user.append(el("h2", "visually-hidden", "You asked"), el("p", "user-text", question));
    this.alerts = el("div", "turn-alerts");
    this.answer = el("section", "bubble bubble-assistant");
    this.answer.dataset.role = "assistant";
    this.answer.setAttribute("aria-label", "Answer");
    this.meta = el("p", "answer-meta");
    this.meta.hidden = true;
    this.body = el("div", "answer-text");
    this.body.dataset.part = "text";
    this.typing = el("p", "typing");
    this.typing.setAttribute("aria-hidden", "true");
    this.typing.append(el("span", "typing-dot"), el("span", "typing-dot"), el("span", "typing-dot"));
    this.warnings = el("div", "answer-warnings");
    this.note = el("p", "answer-note");
    this.note.hidden = true;
    this.actions = el("div", "answer-actions");
    this.stopButton = el("button", "button-quiet button-small stop-button", "Stop");
    this.stopButton.type = "button";
    this.stopButton.dataset.action = "stop";
    this.retryButton = el("button", "button button-small retry-button", "Try again");
    this.retryButton.type = "button";
    this.retryButton.dataset.action = "retry";
    this.retryButton.hidden = true;
    this.actions.append(this.stopButton, this.retryButton);
    // Warnings arrive before any answer text, so they sit at the top of the answer.
    this.answer.append(this.meta, this.warnings, this.body, this.typing, this.note, this.actions);
    this.root.append(user, this.alerts, this.answer);
    this.stopButton.addEventListener("click", () => view.handlers.onStop(this));
    this.retryButton.addEventListener("click", () => view.handlers.onRetry(this));
    this.setStatus(status);
  }

  setStatus(status) {
    this.status = status;
    this.answer.dataset.status = status;
    const busy = status === "pending" || status === "streaming";
    this.answer.setAttribute("aria-busy", busy ? "true" : "false");
    this.typing.hidden = !(busy && this.text === "");
    this.stopButton.hidden = !busy;
    if (status === "pending") {
      this.stopButton.textContent = this.streamId ? "Stop" : "Cancel";
      this.stopButton.setAttribute("aria-label", this.streamId ? "Stop this answer" : "Cancel sending this message");
    } else {
      this.stopButton.textContent = "Stop";
      this.stopButton.setAttribute("aria-label", "Stop this answer");
    }
  }

  bindStream(streamId) {
    this.streamId = streamId;
    this.answer.dataset.streamId = streamId;
    this.view.byStream.set(streamId, this);
    if (this.status === "pending") this.setStatus("pending");
  }

  setNote(text, tone = "") {
    this.note.textContent = text;
    this.note.hidden = !text;
    this.note.dataset.tone = tone;
  }

  start(event) {
    this.meta.replaceChildren();
    this.meta.hidden = true;
    if (this.status === "pending") this.setStatus("streaming");
    this.setNote("");
    const model = event.model;
    if (model && model.demo === true) {
      this.meta.replaceChildren(el("span", "demo-badge", "Demo model · not medical advice"));
      this.meta.hidden = false;
    }
  }

  append(text) {
    this.text += text;
    this.typing.hidden = true;
    this.view.scheduler.mark(this);
  }

  /** Brings the DOM up to date with the text received so far. */
  paint() {
    if (this.painted === this.text) return;
    renderMarkdownInto(this.body, this.text);
    this.painted = this.text;
  }

  alert(event) {
    const banner = el("div", "safety-alert");
    banner.setAttribute("role", "alert");
    banner.dataset.severity = event.severity === "urgent" ? "urgent" : "emergency";
    if (typeof event.category === "string") banner.dataset.category = event.category;
    const title = event.severity === "urgent" ? "Urgent: get help soon" : "This may be an emergency";
    banner.append(el("p", "safety-alert-title", title));
    if (typeof event.guidance === "string") banner.append(el("p", "safety-alert-guidance", event.guidance));
    const actions = el("div", "safety-alert-actions");
    for (const action of Array.isArray(event.actions) ? event.actions : []) {
      const href = safeHref(action?.href, ALERT_SCHEMES);
      if (!href || typeof action.label !== "string") continue;
      const link = linkElement(href);
      link.className = "safety-action";
      link.textContent = action.label;
      actions.append(link);
    }
    if (actions.childElementCount) banner.append(actions);
    this.alerts.append(banner);
  }

  warning(event) {
    const box = el("div", "safety-warning");
    box.setAttribute("role", "note");
    box.dataset.severity = typeof event.severity === "string" ? event.severity : "moderate";
    if (typeof event.kind === "string") box.dataset.kind = event.kind;
    const heading = event.kind === "medication_interaction" ? "Medication warning" : "Safety note";
    const p = el("p", "safety-warning-text");
    p.append(el("strong", "", heading + ": "), document.createTextNode(typeof event.advice === "string" ? event.advice : ""));
    box.append(p);
    if (Array.isArray(event.drugs) && event.drugs.length) {
      box.append(el("p", "safety-warning-drugs", event.drugs.filter((d) => typeof d === "string").join(" + ")));
    }
    this.warnings.append(box);
  }

  end(event) {
    this.view.scheduler.now(this);
    const reason = event.finishReason;
    if (reason === "cancelled") {
      this.setStatus("cancelled");
      this.setNote(this.text ? "Stopped. This is the part written before you stopped it." : "Stopped.");
      this.announce("The answer was stopped.");
    } else {
      this.setStatus("complete");
      if (reason === "length") this.setNote("This answer was cut short because it was long.");
      else if (reason === "safety") this.setNote("This answer was stopped for safety reasons.");
      const warnings = [...this.warnings.querySelectorAll(".safety-warning-text")].map((n) => n.textContent).join(" ");
      this.announce(["Answer: " + this.plainText(), warnings].filter(Boolean).join(" "));
    }
  }

  fail(event) {
    this.view.scheduler.now(this);
    this.setStatus("failed");
    const why = event.code === "model_throttled" || event.code === "model_unavailable"
      ? "The answer service is busy right now."
      : "The answer could not be finished.";
    this.setNote(why + (this.text ? " The part above is incomplete." : ""), "error");
    this.retryButton.hidden = this.retried;
    this.announce(why + " You can try again.");
  }

  /** The message was refused before an answer started (e.g. too long). */
  refused(error) {
    this.setStatus("failed");
    const messages = {
      message_too_large: "This message is too long. Please shorten it and send it again.",
      empty_message: "This message is empty.",
      not_found: "This conversation no longer exists. Start a new one.",
    };
    this.setNote(messages[error?.code] || "This message could not be sent.", "error");
    this.retryButton.hidden = true;
    this.announce(this.note.textContent);
  }

  plainText() {
    return (this.body.innerText || this.body.textContent || "").trim();
  }

  announce(text) {
    if (this.announced) return;
    this.announced = true;
    this.view.announce(text);
  }
}

export class ChatView {
  /**
   * @param {{transcript: HTMLElement, turns: HTMLElement, welcome: HTMLElement, announcer: HTMLElement}} elements
   * @param {{onStop: (turn: Turn) => void, onRetry: (turn: Turn) => void}} handlers
   */
  constructor(elements, handlers) {
    this.elements = elements;
    this.handlers = handlers;
    /** @type {Map<string, Turn>} by the chat.send id */
    this.turns = new Map();
    /** @type {Map<string, Turn>} */
    this.byStream = new Map();
    this.scheduler = new FrameScheduler((paint) => this.keepingBottom(paint));
    this.connectionState = "connecting";
    this.announceTimer = 0;
    /** Follow new text while the reader is at the end; stop when they scroll up to read. */
    this.stickToBottom = true;
    const box = elements.transcript;
    box.addEventListener("scroll", () => {
      this.stickToBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
    }, { passive: true });
  }

  clear() {
    this.turns.clear();
    this.byStream.clear();
    this.elements.turns.replaceChildren();
    this.elements.welcome.hidden = false;
    this.stickToBottom = true;
  }

  /** Runs `change`, then keeps the transcript scrolled to the end if it was there before. */
  keepingBottom(change) {
    change();
    if (this.stickToBottom) this.scrollToEnd();
  }

  scrollToEnd() {
    const box = this.elements.transcript;
    box.scrollTop = box.scrollHeight;
    this.stickToBottom = true;
  }

  /** @param {{id: string, question: string, status?: string}} init */
  add(init) {
    const turn = new Turn(this, init);
    this.turns.set(init.id, turn);
    this.elements.welcome.hidden = true;
    this.keepingBottom(() => this.elements.turns.append(turn.root));
    this.updatePendingNote(turn);
    return turn;
  }

  /** A stored question and answer (REST), e.g. when a conversation is opened. */
  addStored(user, assistant) {
    const turn = this.add({ id: user?.id || assistant?.id || newId(), question: user?.text ?? "", status: "pending" });
    if (!assistant) {
      turn.setStatus("failed");
      turn.setNote("No answer was stored for this question.", "error");
      turn.announced = true;
      return turn;
    }
    if (assistant.streamId) turn.bindStream(assistant.streamId);
    turn.announced = true; // history is not announced
    if (assistant.status === "streaming") {
      turn.setStatus("streaming");
      return turn; // the caller follows the stream; its events fill the text
    }
    turn.text = assistant.text || "";
    turn.paint();
    if (assistant.status === "cancelled") {
      turn.setStatus("cancelled");
      turn.setNote("Stopped.");
    } else if (assistant.status === "failed") {
      turn.setStatus("failed");
      turn.setNote(turn.text ? "This answer was not finished." : "This answer could not be written.", "error");
      turn.retryButton.hidden = false;
    } else {
      turn.setStatus("complete");
    }
    return turn;
  }

  /** An `ack` of chat.send: the message is stored and its stream is known. */
  acknowledged(ack) {
    const turn = this.turns.get(ack.id);
    if (!turn || typeof ack.streamId !== "string") return null;
    turn.bindStream(ack.streamId);
    this.updatePendingNote(turn);
    return turn;
  }

  /** A stream event (already deduplicated by seq). */
  event(event) {
    const turn = this.byStream.get(event.streamId);
    if (!turn) return;
    if (turn.restoring) {
      // The stored text is already shown: take only what REST does not keep.
      if (event.type === "stream.start") {
        const note = turn.note.textContent;
        turn.start(event);
        turn.setNote(note, turn.note.dataset.tone);
      } else if (event.type === "safety.alert") turn.alert(event);
      else if (event.type === "safety.warning") turn.warning(event);
      else if (event.type === "stream.end" || event.type === "error") turn.restoring = false;
      return;
    }
    switch (event.type) {
      case "stream.start":
        turn.start(event);
        break;
      case "stream.chunk":
        if (typeof event.text === "string") turn.append(event.text);
        break;
      case "safety.alert":
        turn.alert(event);
        break;
      case "safety.warning":
        turn.warning(event);
        break;
      case "stream.end":
        turn.end(event);
        break;
      case "error":
        turn.fail(event);
        break;
      default:
        break;
    }
  }

  setConnectionState(state) {
    this.connectionState = state;
    for (const turn of this.turns.values()) this.updatePendingNote(turn);
  }

  updatePendingNote(turn) {
    if (turn.status !== "pending" || turn.streamId) {
      if (turn.status === "pending") turn.setNote("");
      return;
    }
    const connected = this.connectionState === "live" || this.connectionState === "fallback";
    turn.typing.hidden = !connected; // no "writing" dots while the message is only waiting
    turn.setNote(connected ? "Sending…" : "Waiting for a connection. Your message will be sent automatically.", connected ? "" : "waiting");
  }

  /** One polite announcement; cleared first so the same text twice is still read. */
  announce(text) {
    const region = this.elements.announcer;
    clearTimeout(this.announceTimer);
    region.textContent = "";
    this.announceTimer = setTimeout(() => {
      region.textContent = text;
    }, 100);
  }
}
