// Test-page instrumentation for the deepchat-proxy browser suite.
//
// Loaded as a classic script before the Deep Chat module bundle. It
//  * records every WebSocket the page opens (frames sent/received, open/close,
//    negotiated subprotocol) by subclassing the native WebSocket (Deep Chat
//    only checks `socket.send !== undefined`, so the subclass is transparent);
//  * exposes `window.e2e` so the Node side can mount a configured <deep-chat>,
//    submit messages and read what a person would see from the shadow DOM.
(() => {
  'use strict';

  const t0 = performance.now();
  const now = () => Math.round((performance.now() - t0) * 10) / 10;

  // ---------------------------------------------------------------- sockets
  const sockets = [];
  const NativeWebSocket = window.WebSocket;
  class TrackedWebSocket extends NativeWebSocket {
    constructor(url, protocols) {
      if (protocols === undefined) super(url);
      else super(url, protocols);
      const rec = {
        url: String(url),
        requestedProtocols: protocols === undefined ? null : protocols,
        protocol: null,
        createdAt: now(),
        openedAt: null,
        closedAt: null,
        closeCode: null,
        closeReason: null,
        errors: 0,
        sent: [],
        received: [],
      };
      sockets.push(rec);
      this.__e2e = rec;
      // Registered before Deep Chat assigns its on* handlers, so these run first.
      this.addEventListener('open', () => {
        rec.openedAt = now();
        rec.protocol = this.protocol;
      });
      this.addEventListener('message', (ev) => {
        rec.received.push({ t: now(), data: typeof ev.data === 'string' ? ev.data : '[binary]' });
      });
      this.addEventListener('error', () => {
        rec.errors += 1;
      });
      this.addEventListener('close', (ev) => {
        rec.closedAt = now();
        rec.closeCode = ev.code;
        rec.closeReason = ev.reason;
      });
    }
    send(data) {
      this.__e2e.sent.push({ t: now(), data: typeof data === 'string' ? data : '[binary]' });
      return super.send(data);
    }
  }
  window.WebSocket = TrackedWebSocket;

  // ------------------------------------------------------------ deep-chat
  let chat = null;
  const aiTextHistory = []; // distinct texts of the newest AI bubble, in order seen
  const onMessageCalls = [];
  let observer = null;
  const renderedChats = new Set();
  // "render" does not bubble, but a capturing listener on window still sees it.
  window.addEventListener('render', (ev) => {
    if (ev.target && ev.target.tagName === 'DEEP-CHAT') renderedChats.add(ev.target);
  }, true);

  // Deep Chat 2.x fires "message" for every message added (an AI reply once it is complete);
  // 1.x fired "new-message".
  function listen(el) {
    for (const name of ['message', 'new-message']) {
      el.addEventListener(name, (ev) => onMessageCalls.push({ t: now(), event: name, ...ev.detail }));
    }
  }

  function observe(el) {
    chat = el;
    observer = new MutationObserver(recordAiText);
    observer.observe(el.shadowRoot, { subtree: true, childList: true, characterData: true });
  }

  function groupPosition(cl) {
    const top = cl.contains('deep-chat-top-message');
    const bottom = cl.contains('deep-chat-bottom-message');
    if (top && bottom) return 'single';
    if (top) return 'first';
    if (bottom) return 'last';
    return cl.contains('deep-chat-middle-message') ? 'middle' : null;
  }

  function bubbleInfo(outer) {
    const bubble = outer.querySelector('.message-bubble');
    const cls = bubble ? bubble.classList : { contains: () => false };
    const roleClass = Array.from(outer.classList).find((c) => c.startsWith('deep-chat-outer-container-role-'));
    let kind = 'other';
    if (cls.contains('image-message')) kind = 'image';
    else if (cls.contains('error-message-text')) kind = 'error';
    else if (cls.contains('deep-chat-loading-message-dots-container') || (bubble && bubble.querySelector('.loading-message-dots'))) kind = 'loading';
    else if (cls.contains('ai-message-text')) kind = 'ai';
    else if (cls.contains('user-message-text')) kind = 'user';
    return {
      kind,
      role: roleClass ? roleClass.slice('deep-chat-outer-container-role-'.length) : null,
      text: bubble ? bubble.innerText : '',
      streaming: cls.contains('streamed-message'),
      // Deep Chat draws consecutive messages of one role as a group: 'first', 'middle', 'last',
      // or 'single' (null where the version does not mark groups).
      group: groupPosition(outer.classList),
      // Every picture shown in this message container (e.g. an image the model returned).
      images: Array.from(outer.querySelectorAll('img')).map((img) => ({
        src: img.getAttribute('src'),
        loaded: img.complete && img.naturalWidth > 0,
        width: img.naturalWidth,
        height: img.naturalHeight,
      })),
    };
  }

  function bubbles() {
    if (!chat || !chat.shadowRoot) return [];
    return Array.from(chat.shadowRoot.querySelectorAll('.outer-message-container')).map(bubbleInfo);
  }

  function lastAiText() {
    const ai = bubbles().filter((b) => b.kind === 'ai');
    return ai.length ? ai[ai.length - 1].text : null;
  }

  function recordAiText() {
    const text = lastAiText();
    if (text !== null && aiTextHistory[aiTextHistory.length - 1] !== text) aiTextHistory.push(text);
  }

  // What the submit button shows: 'submit' | 'disabled' | 'loading' | 'stop' | null.
  function submitState() {
    if (!chat || !chat.shadowRoot) return null;
    for (const el of chat.shadowRoot.querySelectorAll('.input-button')) {
      if (el.classList.contains('loading-button')) return 'loading';
      if (el.querySelector('#stop-icon')) return 'stop';
      if (el.classList.contains('disabled-button')) return 'disabled';
      if (el.classList.contains('submit-button')) return 'submit';
    }
    return null;
  }

  function busy() {
    if (!chat || !chat.shadowRoot) return false;
    return !!chat.shadowRoot.querySelector('[aria-busy="true"]');
  }

  window.e2e = {
    now,
    sockets,
    // Creates <deep-chat>, assigns `config` as element properties, waits for its "render" event.
    async mount(config) {
      if (chat) throw new Error('e2e.mount called twice');
      await customElements.whenDefined('deep-chat');
      const el = document.createElement('deep-chat');
      el.style.width = '640px';
      el.style.height = '560px';
      for (const [key, value] of Object.entries(config || {})) el[key] = value;
      listen(el);
      const rendered = new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('deep-chat did not fire "render" within 10s')), 10000);
        el.addEventListener('render', () => { clearTimeout(timer); resolve(); }, { once: true });
      });
      document.getElementById('chat-host').appendChild(el);
      await rendered;
      observe(el);
      return true;
    },
    // For pages that create <deep-chat> themselves (e.g. the proxy's demo page; this script is
    // then injected with page.addInitScript): true once such an element has rendered.
    attachExisting() {
      if (chat) return true;
      const el = document.querySelector('deep-chat');
      if (!el || !renderedChats.has(el)) return false;
      // Listeners only: assigning any property after render makes Deep Chat re-render and
      // open a second socket, which would change what is under test.
      listen(el);
      observe(el);
      return true;
    },
    // Waits on nothing: Deep Chat submits on a timer; poll snapshot() for the effect.
    send(text) {
      chat.submitUserMessage({ text });
      return true;
    },
    // Submits text plus one file given as base64 (as if the user had attached it).
    sendWithFile(text, { name, type, base64 }) {
      const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
      chat.submitUserMessage({ text, files: [new File([bytes], name, { type })] });
      return true;
    },
    // True once Deep Chat's own WebSocket is open and the element can accept input.
    socketOpen() {
      const last = sockets[sockets.length - 1];
      return !!chat && renderedChats.has(chat) && !!last && last.openedAt !== null && last.closedAt === null;
    },
    // 'open' | 'none' (rendered without ever creating a socket: Deep Chat opens it during
    // render, so it never will) | 'pending' (not rendered yet, or socket still connecting).
    connectionState() {
      if (!chat || !renderedChats.has(chat)) return 'pending';
      if (sockets.length === 0) return 'none';
      return window.e2e.socketOpen() ? 'open' : 'pending';
    },
    // The element's current `connect` property, as Deep Chat sees it.
    connectConfig() {
      const el = chat || document.querySelector('deep-chat');
      return el ? JSON.parse(JSON.stringify(el.connect ?? null)) : null;
    },
    lastAiText,
    bubbles,
    busy,
    submitState,
    snapshot() {
      return {
        t: now(),
        messages: chat ? chat.getMessages() : [],
        bubbles: bubbles(),
        busy: busy(),
        submit: submitState(),
        aiTextHistory: aiTextHistory.slice(),
        onMessage: onMessageCalls.slice(),
        sockets: JSON.parse(JSON.stringify(sockets)),
      };
    },
  };
})();
