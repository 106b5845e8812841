// The conversation list: GET /v1/conversations, open, start new, delete (after confirmation).

/** @param {string} iso */
function when(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const sameDay = date.toDateString() === new Date().toDateString();
  return sameDay
    ? date.toLocaleTimeString(undefined, { hour: "numeric", minute: "2-digit" })
    : date.toLocaleDateString(undefined, { month: "short", day: "numeric" });
}

export class ConversationList {
  /**
   * @param {{list: HTMLElement, empty: HTMLElement, error: HTMLElement, dialog: HTMLDialogElement, dialogText: HTMLElement}} elements
   * @param {{api: import("./api.js").Api, onOpen: (c: any) => void, onDeleted: (id: string) => void, onRefreshed?: () => void}} deps
   */
  constructor(elements, { api, onOpen, onDeleted, onRefreshed = () => {} }) {
    this.elements = elements;
    this.api = api;
    this.onOpen = onOpen;
    this.onDeleted = onDeleted;
    this.onRefreshed = onRefreshed;
    this.currentId = null;
    /** @type {any[]} */
    this.items = [];
    this.refreshTimer = 0;
  }

  async refresh() {
    clearTimeout(this.refreshTimer);
    this.refreshPending = false;
    try {
      const answer = await this.api.listConversations();
      this.items = Array.isArray(answer?.conversations) ? answer.conversations : [];
      this.elements.error.hidden = true;
      this.render();
      this.onRefreshed();
    } catch {
      this.elements.error.textContent = "Could not load your conversations. They will appear when the connection is back.";
      this.elements.error.hidden = false;
      this.refreshTimer = setTimeout(() => this.refresh(), 10_000);
    }
  }

  /** Refreshes soon: at most one refresh per 300 ms however often it is asked. */
  refreshSoon() {
    if (this.refreshPending) return;
    this.refreshPending = true;
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => {
      this.refreshPending = false;
      this.refresh();
    }, 300);
  }

  setCurrent(id) {
    this.currentId = id;
    for (const row of this.elements.list.querySelectorAll("[data-conversation-id]")) {
      const open = row.querySelector(".conversation-open");
      if (row.getAttribute("data-conversation-id") === id) open?.setAttribute("aria-current", "true");
      else open?.removeAttribute("aria-current");
    }
  }

  titleOf(id) {
    return this.items.find((c) => c.id === id)?.title ?? null;
  }

  /**
   * Updates the list in place, keyed by conversation id: rows are reused and only moved when
   * the order changed, so a periodic refresh neither flickers nor takes keyboard focus away.
   */
  render() {
    const list = this.elements.list;
    const focused = list.contains(document.activeElement) ? document.activeElement : null;
    /** @type {Map<string, HTMLElement>} */
    const rows = new Map();
    for (const row of list.querySelectorAll(":scope > [data-conversation-id]")) {
      rows.set(row.getAttribute("data-conversation-id") || "", /** @type {HTMLElement} */ (row));
    }
    let previous = null;
    for (const conversation of this.items) {
      let row = rows.get(conversation.id);
      rows.delete(conversation.id);
      if (!row) row = this.createRow(conversation);
      this.updateRow(row, conversation);
      const expected = previous ? previous.nextElementSibling : list.firstElementChild;
      if (expected !== row) {
        if (previous) previous.after(row);
        else list.prepend(row);
      }
      previous = row;
    }
    for (const stale of rows.values()) stale.remove();
    if (focused && focused.isConnected && document.activeElement !== focused) focused.focus();
    this.elements.empty.hidden = this.items.length > 0;
  }

  createRow(conversation) {
    const li = document.createElement("li");
    li.className = "conversation";
    li.setAttribute("data-conversation-id", conversation.id);
    const open = document.createElement("button");
    open.type = "button";
    open.className = "conversation-open";
    const title = document.createElement("span");
    title.className = "conversation-title";
    const time = document.createElement("span");
    time.className = "conversation-time";
    open.append(title, time);
    open.addEventListener("click", () => this.onOpen(this.items.find((c) => c.id === conversation.id) ?? conversation));
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "conversation-delete";
    remove.textContent = "Delete";
    remove.addEventListener("click", () => this.confirmDelete(this.items.find((c) => c.id === conversation.id) ?? conversation, remove));
    li.append(open, remove);
    return li;
  }

  updateRow(row, conversation) {
    const title = conversation.title || "Conversation";
    const titleNode = row.querySelector(".conversation-title");
    const timeNode = row.querySelector(".conversation-time");
    const open = row.querySelector(".conversation-open");
    const remove = row.querySelector(".conversation-delete");
    if (titleNode && titleNode.textContent !== title) titleNode.textContent = title;
    const stamp = when(conversation.updatedAt);
    if (timeNode && timeNode.textContent !== stamp) timeNode.textContent = stamp;
    remove?.setAttribute("aria-label", `Delete conversation: ${title}`);
    if (conversation.id === this.currentId) open?.setAttribute("aria-current", "true");
    else open?.removeAttribute("aria-current");
  }

  /** Asks first (a modal dialog), then deletes. */
  confirmDelete(conversation, opener) {
    const dialog = this.elements.dialog;
    this.elements.dialogText.textContent = `“${conversation.title || "Conversation"}” and all its messages will be erased. This cannot be undone.`;
    dialog.returnValue = "";
    const onClose = async () => {
      dialog.removeEventListener("close", onClose);
      if (dialog.returnValue !== "delete") {
        opener.focus();
        return;
      }
      try {
        await this.api.deleteConversation(conversation.id);
      } catch (error) {
        if (error?.code !== "not_found") {
          this.elements.error.textContent = "Could not delete the conversation. Please try again.";
          this.elements.error.hidden = false;
          opener.focus();
          return;
        }
      }
      this.items = this.items.filter((c) => c.id !== conversation.id);
      this.render();
      this.onDeleted(conversation.id);
      // The button that opened the dialog is gone: keep keyboard focus in the list.
      if (!document.activeElement || document.activeElement === document.body) {
        /** @type {HTMLElement | null} */ (this.elements.list.querySelector(".conversation-open"))?.focus();
      }
    };
    dialog.addEventListener("close", onClose);
    dialog.showModal();
  }
}
