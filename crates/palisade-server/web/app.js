// Palisade browser app: vanilla JS, no framework, no build step, no network
// except this origin's JSON API.
//
// Safety rule for the whole file: text from the model or from users only ever
// reaches the page through text nodes (textContent / append(string)). There
// is no helper that accepts HTML, and the CSP (script-src/style-src 'self')
// is the second line of defence.
//
// Sections:
//   1. DOM helpers and icons
//   2. API client (token, errors, 401 handling)
//   3. NDJSON reader (streamed and followed answers)
//   4. Markdown renderer (safe subset, DOM nodes only)
//   5. Answer segments (markdown / code / mermaid / placeholder / raw)
//   6. App state, router and shell (header + sidebar)
//   7. View: login
//   8. View: chat (conversation, composer, streaming, following a running answer)
//   9. View: moderation (flagged threads, message details)
//  10. View: guard playground
//  11. Boot
'use strict';

(() => {
  // -------------------------------------------------------------------------
  // 1. DOM helpers and icons
  // -------------------------------------------------------------------------

  /**
   * Build an element. `props`: class, text, on<event> listeners, and plain
   * attributes. Children: nodes or strings (strings become text nodes).
   * Inline styles are refused: the CSP forbids style attributes.
   */
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    if (props) {
      for (const [key, value] of Object.entries(props)) {
        if (value == null || value === false) continue;
        if (key === 'class') el.className = value;
        else if (key === 'text') el.textContent = value;
        else if (key.startsWith('on') && typeof value === 'function') {
          el.addEventListener(key.slice(2), value);
        } else if (key === 'style') throw new Error('inline styles are not allowed (CSP)');
        else el.setAttribute(key, value === true ? '' : String(value));
      }
    }
    appendChildren(el, children);
    return el;
  }

  function appendChildren(el, children) {
    for (const child of children.flat(Infinity)) {
      if (child == null || child === false) continue;
      el.append(child instanceof Node ? child : String(child));
    }
  }

  const srOnly = (text) => h('span', { class: 'visually-hidden' }, text);

  const findLast = (list, pred) => {
    for (let i = list.length - 1; i >= 0; i -= 1) if (pred(list[i])) return list[i];
    return undefined;
  };

  // Stroke icons (24×24, drawn for this app). Paths are static strings.
  const ICONS = {
    plus: ['M12 5v14', 'M5 12h14'],
    search: ['M19 11a8 8 0 1 1-16 0 8 8 0 0 1 16 0z', 'M21 21l-4.35-4.35'],
    archive: ['M21 8v13H3V8', 'M1 3h22v5H1z', 'M10 12h4'],
    unarchive: ['M21 8v13H3V8', 'M1 3h22v5H1z', 'M12 18v-6', 'M9.5 14.5 12 12l2.5 2.5'],
    menu: ['M3 12h18', 'M3 6h18', 'M3 18h18'],
    shield: ['M12 22s8-4 8-10V5l-8-3-8 3v7c0 6 8 10 8 10z'],
    logout: ['M9 21H5a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2h4', 'M16 17l5-5-5-5', 'M21 12H9'],
    send: ['M12 19V5', 'M5 12l7-7 7 7'],
    stop: ['M7 7h10v10H7z'],
    copy: ['M11 9h9a2 2 0 0 1 2 2v9a2 2 0 0 1-2 2h-9a2 2 0 0 1-2-2v-9a2 2 0 0 1 2-2z',
      'M5 15H4a2 2 0 0 1-2-2V4a2 2 0 0 1 2-2h9a2 2 0 0 1 2 2v1'],
    check: ['M20 6 9 17l-5-5'],
    refresh: ['M23 4v6h-6', 'M1 20v-6h6', 'M3.51 9a9 9 0 0 1 14.85-3.36L23 10',
      'M1 14l4.64 4.36A9 9 0 0 0 20.49 15'],
    edit: ['M12 20h9', 'M16.5 3.5a2.12 2.12 0 0 1 3 3L7 19l-4 1 1-4z'],
    alert: ['M10.29 3.86 1.82 18a2 2 0 0 0 1.71 3h16.94a2 2 0 0 0 1.71-3L13.71 3.86a2 2 0 0 0-3.42 0z',
      'M12 9v4', 'M12 17h.01'],
    close: ['M18 6 6 18', 'M6 6l12 12'],
    chat: ['M21 15a2 2 0 0 1-2 2H7l-4 4V5a2 2 0 0 1 2-2h14a2 2 0 0 1 2 2z'],
    info: ['M22 12a10 10 0 1 1-20 0 10 10 0 0 1 20 0z', 'M12 16v-4', 'M12 8h.01'],
    code: ['M16 18l6-6-6-6', 'M8 6l-6 6 6 6'],
    book: ['M4 19.5A2.5 2.5 0 0 1 6.5 17H20', 'M6.5 2H20v20H6.5A2.5 2.5 0 0 1 4 19.5v-15A2.5 2.5 0 0 1 6.5 2z'],
    mail: ['M4 4h16a2 2 0 0 1 2 2v12a2 2 0 0 1-2 2H4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z', 'M22 6l-10 7L2 6'],
    list: ['M8 6h13', 'M8 12h13', 'M8 18h13', 'M3 6h.01', 'M3 12h.01', 'M3 18h.01'],
  };
  const SVG_NS = 'http://www.w3.org/2000/svg';

  function icon(name, extraClass) {
    const svg = document.createElementNS(SVG_NS, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('focusable', 'false');
    svg.setAttribute('class', extraClass ? `icon ${extraClass}` : 'icon');
    for (const d of ICONS[name]) {
      const path = document.createElementNS(SVG_NS, 'path');
      path.setAttribute('d', d);
      svg.append(path);
    }
    return svg;
  }

  /** An icon-only button; `label` is its accessible name and tooltip. */
  function iconButton(name, label, onClick, extraClass = '') {
    return h('button', {
      type: 'button', class: `icon-btn ${extraClass}`.trim(), 'aria-label': label, title: label,
      onclick: onClick,
    }, icon(name));
  }

  /** Copy text; the async Clipboard API needs a secure context, so fall back. */
  async function copyText(text) {
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(text);
        return true;
      }
    } catch (_) { /* fall through to the legacy path */ }
    const area = h('textarea', { class: 'clipboard-helper', readonly: true, 'aria-hidden': 'true', tabindex: '-1' });
    area.value = text;
    document.body.append(area);
    area.select();
    let ok = false;
    try { ok = document.execCommand('copy'); } catch (_) { ok = false; }
    area.remove();
    return ok;
  }

  const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
  function formatDateTime(iso) {
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? '' : dateTimeFormat.format(date);
  }

  /** Unicode scalar values, as the server counts the 50,000-character limit. */
  function charCount(text) {
    let n = 0;
    for (let i = 0; i < text.length; i += 1) {
      const c = text.charCodeAt(i);
      // A high surrogate followed by a low one is one character.
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
        const d = text.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) i += 1;
      }
      n += 1;
    }
    return n;
  }

  const narrowScreen = () => window.matchMedia('(max-width: 768px)').matches;
  const coarsePointer = () => window.matchMedia('(pointer: coarse)').matches;

  // -------------------------------------------------------------------------
  // 2. API client
  // -------------------------------------------------------------------------
  // One function for every call: it adds the token, turns DRF error bodies
  // into readable messages, and sends the user back to the login page on 401.

  const TOKEN_KEY = 'palisade.token';
  const MAX_INPUT_CHARS = 50000;
  const COUNTER_FROM_CHARS = 45000;

  const tokenStore = {
    get() { try { return sessionStorage.getItem(TOKEN_KEY); } catch (_) { return null; } },
    set(token) { try { sessionStorage.setItem(TOKEN_KEY, token); } catch (_) { /* private mode */ } },
    clear() { try { sessionStorage.removeItem(TOKEN_KEY); } catch (_) { /* ignore */ } },
  };

  const FIELD_LABELS = {
    username: 'Username', password: 'Password', input: 'Message', text: 'Text',
    thread_uuid: 'Thread', mode: 'Mode', edit_message_uuid: 'Edited message',
  };

  /** A readable sentence from a DRF error body. */
  function describeError(status, body) {
    if (status === 0) return 'Could not reach the server. Check your connection and try again.';
    if (body && typeof body === 'object') {
      if (typeof body.detail === 'string') return body.detail;
      if (Array.isArray(body)) return body.map(String).join(' ');
      const parts = [];
      for (const [field, value] of Object.entries(body)) {
        const text = Array.isArray(value) ? value.map(String).join(' ') : String(value);
        parts.push(field === 'non_field_errors' ? text : `${FIELD_LABELS[field] || field}: ${text}`);
      }
      if (parts.length) return parts.join(' ');
    }
    return `The server answered with an error (${status}).`;
  }

  class ApiError extends Error {
    constructor(status, body) {
      super(describeError(status, body));
      this.name = 'ApiError';
      this.status = status;
      this.body = body;
    }
  }

  async function readJson(response) {
    try { return await response.json(); } catch (_) { return null; }
  }

  /**
   * Call the API. `raw: true` returns the Response (for the stream);
   * `anonymous: true` sends no token and does not treat 401 as "logged out".
   */
  async function api(path, { method = 'GET', body, signal, raw = false, anonymous = false } = {}) {
    const headers = { Accept: raw ? 'application/x-ndjson, application/json' : 'application/json' };
    const token = tokenStore.get();
    if (token && !anonymous) headers.Authorization = `Token ${token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let response;
    try {
      response = await fetch(path, {
        method, headers, signal, cache: 'no-store', credentials: 'omit',
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      if (err && err.name === 'AbortError') throw err;
      throw new ApiError(0, null);
    }
    if (!response.ok) {
      const errorBody = await readJson(response);
      if (response.status === 401 && !anonymous) onUnauthorized();
      throw new ApiError(response.status, errorBody);
    }
    if (raw) return response;
    if (response.status === 204) return null;
    return readJson(response);
  }

  const query = (params) => {
    const search = new URLSearchParams();
    for (const [key, value] of Object.entries(params)) {
      if (value !== undefined && value !== null && value !== '') search.set(key, String(value));
    }
    return search.toString();
  };

  // -------------------------------------------------------------------------
  // 3. NDJSON reader
  // -------------------------------------------------------------------------
  // The answer arrives as one JSON object per line; a network chunk may end
  // in the middle of a line (or of a UTF-8 character), so keep the tail.

  async function* readNdjson(response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    const parse = (line) => {
      try { return JSON.parse(line); } catch (_) { return null; }
    };
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let newline = buffer.indexOf('\n');
        while (newline >= 0) {
          const line = buffer.slice(0, newline).trim();
          buffer = buffer.slice(newline + 1);
          if (line) {
            const item = parse(line);
            if (item && typeof item === 'object') yield item;
          }
          newline = buffer.indexOf('\n');
        }
      }
      buffer += decoder.decode();
      const rest = buffer.trim();
      if (rest) {
        const item = parse(rest);
        if (item && typeof item === 'object') yield item;
      }
    } finally {
      reader.releaseLock();
    }
  }

  // -------------------------------------------------------------------------
  // 4. Markdown renderer
  // -------------------------------------------------------------------------
  // A deliberately small subset (what chat models write): headings,
  // paragraphs, lists, emphasis, inline code, links, tables, blockquotes,
  // rules. Output is DOM nodes whose text is set through text nodes, so raw
  // HTML in the model's output shows up as text. Links only for http(s) and
  // mailto; images become links (no remote loads).

  const Markdown = (() => {
    const PUNCTUATION = /[!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]/;
    const RE_HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
    const RE_HR = /^ {0,3}(?:(?:-[ \t]*){3,}|(?:\*[ \t]*){3,}|(?:_[ \t]*){3,})$/;
    const RE_QUOTE = /^ {0,3}> ?(.*)$/;
    const RE_ITEM = /^( *)([-*+]|\d{1,9}[.)])(?:([ \t]+)(.*))?$/;
    const RE_TABLE_DELIM = /^ *\|? *:?-+:? *(?:\| *:?-+:? *)*\|? *$/;
    const RE_FENCE = /^ {0,3}(~{3,}|`{3,})[ \t]*([^`\s]*)[^`]*$/;

    const isBlank = (line) => /^\s*$/.test(line);
    const indentOf = (line) => line.match(/^ */)[0].length;

    /** The href for a link target, or null when it is not http(s)/mailto. */
    function safeHref(raw) {
      const url = String(raw).trim();
      if (!/^(?:https?:\/\/|mailto:)/i.test(url)) return null;
      // Control characters and spaces are stripped by URL parsers; refuse them.
      if (/[\u0000-\u0020\u007f-\u009f]/.test(url)) return null;
      try {
        const parsed = new URL(url);
        if (!['http:', 'https:', 'mailto:'].includes(parsed.protocol)) return null;
        return parsed.href;
      } catch (_) {
        return null;
      }
    }

    function linkElement(href, children, extraClass) {
      const a = h('a', { class: extraClass, rel: 'noopener noreferrer', target: '_blank' });
      a.href = href;
      appendChildren(a, [children]);
      return a;
    }

    function listItemMatch(line) {
      // "- x" needs a space after the marker, so "**bold**" or "1.5" never match.
      const m = RE_ITEM.exec(line);
      if (!m) return null;
      const spaces = m[3] ? m[3].replace(/\t/g, '    ').length : 1;
      const indent = m[1].length;
      const markerWidth = m[2].length;
      return {
        indent,
        marker: m[2],
        ordered: /\d/.test(m[2]),
        content: m[4] || '',
        // Content column: marker + spaces (a very wide gap means indented code; treat as 1).
        contentIndent: indent + markerWidth + (spaces > 4 ? 1 : spaces),
      };
    }

    function startsBlock(line) {
      return RE_HEADING.test(line) || RE_HR.test(line) || RE_QUOTE.test(line)
        || RE_FENCE.test(line) || listItemMatch(line) !== null;
    }

    function splitTableRow(line) {
      let s = line.trim();
      if (s.startsWith('|')) s = s.slice(1);
      if (s.endsWith('|') && !s.endsWith('\\|')) s = s.slice(0, -1);
      const cells = [];
      let current = '';
      let inCode = false;
      for (let i = 0; i < s.length; i += 1) {
        const c = s[i];
        if (c === '\\' && s[i + 1] === '|') { current += '|'; i += 1; continue; }
        if (c === '`') inCode = !inCode;
        if (c === '|' && !inCode) { cells.push(current.trim()); current = ''; continue; }
        current += c;
      }
      cells.push(current.trim());
      return cells;
    }

    function isTableStart(lines, i) {
      return i + 1 < lines.length && lines[i].includes('|') && RE_TABLE_DELIM.test(lines[i + 1])
        && (lines[i + 1].includes('|') || lines[i].trim().startsWith('|'));
    }

    function renderTable(lines, i, parent) {
      const header = splitTableRow(lines[i]);
      const aligns = splitTableRow(lines[i + 1]).map((cell) => {
        const left = cell.startsWith(':');
        const right = cell.endsWith(':');
        if (left && right) return 'center';
        if (right) return 'right';
        if (left) return 'left';
        return '';
      });
      const columns = header.length;
      const cell = (tag, text, col) => {
        const el = h(tag, { class: aligns[col] ? `align-${aligns[col]}` : null });
        if (tag === 'th') el.setAttribute('scope', 'col');
        renderInline(text, el);
        return el;
      };
      const headRow = h('tr', null, header.map((text, col) => cell('th', text, col)));
      const body = h('tbody');
      let j = i + 2;
      while (j < lines.length && !isBlank(lines[j]) && lines[j].includes('|')) {
        const cells = splitTableRow(lines[j]);
        const row = h('tr');
        for (let col = 0; col < columns; col += 1) row.append(cell('td', cells[col] || '', col));
        body.append(row);
        j += 1;
      }
      parent.append(h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Table' },
        h('table', null, h('thead', null, headRow), body)));
      return j;
    }

    function renderList(lines, i, parent, depth) {
      const first = listItemMatch(lines[i]);
      const list = h(first.ordered ? 'ol' : 'ul');
      if (first.ordered) {
        const start = parseInt(first.marker, 10);
        if (start !== 1) list.setAttribute('start', String(start));
      }
      let loose = false;
      const items = [];
      while (i < lines.length) {
        const item = listItemMatch(lines[i]);
        if (!item || item.ordered !== first.ordered || item.indent > first.indent + 3) break;
        const itemLines = [item.content];
        i += 1;
        let previousBlank = false;
        while (i < lines.length) {
          const line = lines[i];
          if (isBlank(line)) {
            // A blank line continues the item only if indented content follows.
            let k = i + 1;
            while (k < lines.length && isBlank(lines[k])) k += 1;
            if (k < lines.length && indentOf(lines[k]) > item.indent && indentOf(lines[k]) >= Math.min(item.contentIndent, item.indent + 2)) {
              itemLines.push('');
              previousBlank = true;
              i += 1;
              continue;
            }
            if (k < lines.length && listItemMatch(lines[k]) && indentOf(lines[k]) === first.indent) loose = true;
            i = k;
            break;
          }
          const indent = indentOf(line);
          if (indent > item.indent && (indent >= item.contentIndent || listItemMatch(line))) {
            itemLines.push(line.slice(Math.min(indent, item.contentIndent)));
            if (previousBlank) loose = true;
            previousBlank = false;
            i += 1;
            continue;
          }
          // Lazy continuation of the item's paragraph.
          if (!previousBlank && !startsBlock(line)) {
            itemLines.push(line.trim());
            i += 1;
            continue;
          }
          break;
        }
        items.push(itemLines);
        const next = i < lines.length ? listItemMatch(lines[i]) : null;
        if (!next || next.ordered !== first.ordered || next.indent < first.indent) break;
      }
      for (const itemLines of items) {
        const li = h('li');
        renderBlocks(itemLines, li, depth + 1);
        if (!loose) {
          // Tight list: paragraphs render inline, as in CommonMark.
          for (const child of [...li.children]) {
            if (child.tagName === 'P') child.replaceWith(...child.childNodes);
          }
        }
        list.append(li);
      }
      parent.append(list);
      return i;
    }

    function renderBlocks(lines, parent, depth = 0) {
      if (depth > 12) {
        // Pathological nesting: show the rest as text rather than recurse.
        parent.append(h('p', null, lines.join('\n')));
        return;
      }
      let i = 0;
      while (i < lines.length) {
        const line = lines[i];
        if (isBlank(line)) { i += 1; continue; }

        const fence = RE_FENCE.exec(line);
        if (fence) {
          // Fences inside a markdown segment (~~~, or nested in a list): show as code.
          const marker = fence[1];
          const code = [];
          let j = i + 1;
          while (j < lines.length && !lines[j].trim().startsWith(marker)) { code.push(lines[j]); j += 1; }
          parent.append(codeFigure(fence[2] || 'code', code.join('\n')));
          i = j + 1;
          continue;
        }

        const heading = RE_HEADING.exec(line);
        if (heading) {
          // Markdown level n → h(n+2): the page and the thread own h1/h2.
          const level = heading[1].length;
          const el = h(`h${Math.min(level + 2, 6)}`, { class: `md-h${level}` });
          renderInline(heading[2] || '', el);
          parent.append(el);
          i += 1;
          continue;
        }

        if (RE_HR.test(line)) { parent.append(h('hr')); i += 1; continue; }

        if (RE_QUOTE.test(line)) {
          const quoted = [];
          while (i < lines.length && !isBlank(lines[i])) {
            const m = RE_QUOTE.exec(lines[i]);
            if (m) quoted.push(m[1]);
            else if (startsBlock(lines[i])) break;
            else quoted.push(lines[i]); // lazy continuation
            i += 1;
          }
          const quote = h('blockquote');
          renderBlocks(quoted, quote, depth + 1);
          parent.append(quote);
          continue;
        }

        if (listItemMatch(line)) { i = renderList(lines, i, parent, depth); continue; }

        if (isTableStart(lines, i)) { i = renderTable(lines, i, parent); continue; }

        // Paragraph: until a blank line or the start of another block.
        const para = [line.trim()];
        i += 1;
        while (i < lines.length && !isBlank(lines[i]) && !startsBlock(lines[i]) && !isTableStart(lines, i)) {
          para.push(lines[i].trim());
          i += 1;
        }
        const p = h('p');
        renderInline(para.join('\n'), p);
        parent.append(p);
      }
    }

    /** Length of the run of `ch` starting at `i`. */
    function runLength(text, i, ch) {
      let j = i;
      while (text[j] === ch) j += 1;
      return j - i;
    }

    /** Index just past a code span starting at i, or -1 when it is not closed. */
    function codeSpanEnd(text, i) {
      const n = runLength(text, i, '`');
      let j = i + n;
      while (j < text.length) {
        const k = text.indexOf('`', j);
        if (k < 0) return -1;
        const m = runLength(text, k, '`');
        if (m === n) return k + m;
        j = k + m;
      }
      return -1;
    }

    /** Position of the closing delimiter for an emphasis run, or -1. */
    function findCloser(text, from, ch, n) {
      let j = from;
      while (j < text.length) {
        const c = text[j];
        if (c === '\\') { j += 2; continue; }
        if (c === '`') {
          const end = codeSpanEnd(text, j);
          j = end < 0 ? j + runLength(text, j, '`') : end;
          continue;
        }
        if (c === ch) {
          const m = runLength(text, j, ch);
          const before = text[j - 1];
          const after = text[j + m];
          const rightFlanking = j > from && before !== undefined && !/\s/.test(before);
          const wordAfter = after !== undefined && /[\p{L}\p{N}]/u.test(after);
          if (m === n && rightFlanking && !(ch === '_' && wordAfter)) return j;
          j += m;
          continue;
        }
        j += 1;
      }
      return -1;
    }

    /** Parse `[label](dest "title")` starting at the '['; null when it is not a link. */
    function parseLink(text, i) {
      let depth = 0;
      let j = i;
      for (; j < text.length; j += 1) {
        const c = text[j];
        if (c === '\\') { j += 1; continue; }
        if (c === '`') {
          const end = codeSpanEnd(text, j);
          if (end > 0) { j = end - 1; continue; }
        }
        if (c === '[') depth += 1;
        else if (c === ']') {
          depth -= 1;
          if (depth === 0) break;
        }
      }
      if (j >= text.length || text[j + 1] !== '(') return null;
      const label = text.slice(i + 1, j);
      let k = j + 2;
      while (text[k] === ' ') k += 1;
      let dest = '';
      if (text[k] === '<') {
        const close = text.indexOf('>', k);
        if (close < 0) return null;
        dest = text.slice(k + 1, close);
        k = close + 1;
      } else {
        let parens = 0;
        const startDest = k;
        while (k < text.length) {
          const c = text[k];
          if (c === '\\') { k += 2; continue; }
          if (/\s/.test(c)) break;
          if (c === '(') parens += 1;
          else if (c === ')') {
            if (parens === 0) break;
            parens -= 1;
          }
          k += 1;
        }
        dest = text.slice(startDest, k);
      }
      while (text[k] === ' ' || text[k] === '\n') k += 1;
      if (text[k] === '"' || text[k] === "'") {
        const close = text.indexOf(text[k], k + 1);
        if (close < 0) return null;
        k = close + 1;
        while (text[k] === ' ') k += 1;
      }
      if (text[k] !== ')') return null;
      return { label, dest, end: k + 1 };
    }

    const RE_BARE_URL = /^(?:https?:\/\/|mailto:)[^\s<>"'`]+/i;

    function trimUrlTail(url) {
      let u = url;
      for (;;) {
        const last = u[u.length - 1];
        if (/[.,:;!?*_~'"]/.test(last)) { u = u.slice(0, -1); continue; }
        if (last === ')' && (u.split('(').length - 1) < (u.split(')').length - 1)) { u = u.slice(0, -1); continue; }
        break;
      }
      return u;
    }

    /** Inline markdown → nodes appended to `parent`. `inLink` avoids nested links. */
    function renderInline(text, parent, inLink = false) {
      let buffer = '';
      const flush = () => {
        if (buffer) { parent.append(buffer); buffer = ''; }
      };
      let i = 0;
      while (i < text.length) {
        const c = text[i];

        if (c === '\\' && i + 1 < text.length && PUNCTUATION.test(text[i + 1])) {
          buffer += text[i + 1];
          i += 2;
          continue;
        }
        if (c === '\\' && text[i + 1] === '\n') {
          flush();
          parent.append(h('br'));
          i += 2;
          continue;
        }

        if (c === '`') {
          const n = runLength(text, i, '`');
          const end = codeSpanEnd(text, i);
          if (end < 0) { buffer += text.slice(i, i + n); i += n; continue; }
          let code = text.slice(i + n, end - n).replace(/\n/g, ' ');
          if (code.length > 2 && code.startsWith(' ') && code.endsWith(' ') && code.trim()) code = code.slice(1, -1);
          flush();
          parent.append(h('code', null, code));
          i = end;
          continue;
        }

        if ((c === '[' || (c === '!' && text[i + 1] === '[')) && !inLink) {
          const isImage = c === '!';
          const link = parseLink(text, isImage ? i + 1 : i);
          if (link) {
            flush();
            const href = safeHref(link.dest);
            if (isImage) {
              // No images from model output: name it, and link it when the URL is safe.
              const alt = link.label.trim() || 'image';
              parent.append(href ? linkElement(href, `Image: ${alt}`, 'md-image-link') : `Image: ${alt}`);
            } else if (href) {
              const a = linkElement(href, []);
              renderInline(link.label, a, true);
              parent.append(a);
            } else {
              // Unsafe or relative target: the label as plain text.
              renderInline(link.label, parent, true);
            }
            i = link.end;
            continue;
          }
        }

        if (c === '<' && !inLink) {
          const m = /^<((?:https?:\/\/|mailto:)[^\s<>]+)>/i.exec(text.slice(i));
          if (m) {
            const href = safeHref(m[1]);
            flush();
            parent.append(href ? linkElement(href, m[1]) : m[0]);
            i += m[0].length;
            continue;
          }
        }

        if ((c === 'h' || c === 'H' || c === 'm' || c === 'M') && !inLink
            && (i === 0 || !/[\p{L}\p{N}]/u.test(text[i - 1]))) {
          const m = RE_BARE_URL.exec(text.slice(i));
          if (m) {
            const url = trimUrlTail(m[0]);
            const href = /^mailto:/i.test(url) && !url.includes('@') ? null : safeHref(url);
            if (href) {
              flush();
              parent.append(linkElement(href, url));
              i += url.length;
              continue;
            }
          }
        }

        if (c === '*' || c === '_' || c === '~') {
          const n = runLength(text, i, c);
          const after = text[i + n];
          const before = text[i - 1];
          const leftFlanking = after !== undefined && !/\s/.test(after);
          const intraword = c === '_' && before !== undefined && /[\p{L}\p{N}]/u.test(before);
          const usable = c === '~' ? n === 2 : n <= 3;
          if (leftFlanking && !intraword && usable) {
            const close = findCloser(text, i + n, c, n);
            if (close > i + n) {
              flush();
              const inner = text.slice(i + n, close);
              let el;
              if (c === '~') el = h('del');
              else if (n === 1) el = h('em');
              else if (n === 2) el = h('strong');
              else {
                el = h('strong');
                const em = h('em');
                el.append(em);
                renderInline(inner, em, inLink);
                parent.append(el);
                i = close + n;
                continue;
              }
              renderInline(inner, el, inLink);
              parent.append(el);
              i = close + n;
              continue;
            }
          }
          buffer += text.slice(i, i + n);
          i += n;
          continue;
        }

        if (c === '\n') {
          // Chat answers use single newlines as line breaks.
          flush();
          parent.append(h('br'));
          i += 1;
          continue;
        }

        buffer += c;
        i += 1;
      }
      flush();
    }

    /** Render markdown text into a fragment. */
    function render(text) {
      const fragment = document.createDocumentFragment();
      const lines = String(text).replace(/\r\n?/g, '\n').split('\n').map((l) => l.replace(/\t/g, '    '));
      renderBlocks(lines, fragment);
      return fragment;
    }

    return { render, safeHref };
  })();

  // -------------------------------------------------------------------------
  // 5. Answer segments
  // -------------------------------------------------------------------------
  // An answer is a list of segments: markdown text, a complete code block, a
  // mermaid block, a placeholder for a block still being written, or raw
  // output. Each segment owns one DOM node that is re-rendered when its
  // segment changes, so a long answer is not rebuilt on every line.

  /** `<figure class="code-block">` with a header bar (language + Copy code). */
  function codeFigure(lang, code) {
    const text = code.replace(/\n$/, '');
    const status = h('span', { class: 'copy-status', 'aria-live': 'polite' });
    let timer = 0;
    const copy = h('button', { type: 'button', class: 'code-copy' }, icon('copy'), 'Copy code');
    copy.addEventListener('click', async () => {
      const ok = await copyText(text);
      status.textContent = ok ? 'Copied' : 'Copy failed';
      clearTimeout(timer);
      timer = setTimeout(() => { status.textContent = ''; }, 1800);
    });
    return h('figure', { class: 'code-block' },
      h('figcaption', { class: 'code-header' },
        h('span', { class: 'code-lang' }, lang || 'code'),
        h('span', { class: 'code-tools' }, status, copy)),
      h('pre', { tabindex: '0' }, h('code', { 'data-lang': lang || 'code' }, text)));
  }

  function placeholderBlock(kind) {
    return h('div', { class: 'code-placeholder', role: 'status' },
      h('span', { class: 'code-placeholder-label' }, kind === 'mermaid' ? 'Writing a diagram' : 'Writing code'),
      h('span', { class: 'dots', 'aria-hidden': 'true' }, h('span'), h('span'), h('span')),
      srOnly('…'));
  }

  function renderSegment(seg) {
    switch (seg.kind) {
      case 'md': return h('div', { class: 'md-segment' }, Markdown.render(seg.text));
      case 'code': return codeFigure(seg.lang, seg.code);
      case 'mermaid': return codeFigure('mermaid', seg.code);
      case 'load': return placeholderBlock(seg.t);
      case 'raw': return h('pre', { class: 'raw-output' }, h('code', null, seg.text));
      default: return h('div');
    }
  }

  /**
   * Split stored content the way the server's stream parser does (Python's
   * str.split("```")): odd parts are fenced blocks whose first line is the tag.
   */
  function segmentsFromStored(content) {
    const parts = String(content).split('```');
    const segments = [];
    parts.forEach((part, index) => {
      if (index % 2 === 0) {
        if (part) segments.push({ kind: 'md', text: part });
        return;
      }
      const closed = index < parts.length - 1;
      const newline = part.indexOf('\n');
      if (newline < 0) {
        if (closed) segments.push({ kind: 'code', lang: 'code', code: '' });
        else segments.push({ kind: 'md', text: `\`\`\`${part}` });
        return;
      }
      const tag = part.slice(0, newline).trim() || 'code';
      const code = part.slice(newline + 1);
      segments.push(tag === 'mermaid' ? { kind: 'mermaid', code } : { kind: 'code', lang: tag, code });
    });
    return segments;
  }

  class Answer {
    constructor(container) {
      this.container = container;
      this.segments = [];
    }

    static fromStored(container, content) {
      const answer = new Answer(container);
      for (const seg of segmentsFromStored(content)) answer.push(seg);
      return answer;
    }

    push(seg) {
      seg.el = renderSegment(seg);
      this.segments.push(seg);
      this.container.append(seg.el);
    }

    rerender(seg) {
      const el = renderSegment(seg);
      seg.el.replaceWith(el);
      seg.el = el;
    }

    appendMarkdown(text) {
      const last = this.segments[this.segments.length - 1];
      if (last && last.kind === 'md') {
        last.text += text;
        this.rerender(last);
      } else {
        this.push({ kind: 'md', text });
      }
    }

    startBlock(t) { this.push({ kind: 'load', t: t === 'mermaid' ? 'mermaid' : 'code' }); }

    /** A complete block replaces the oldest placeholder still waiting. */
    completeBlock(kind, code, lang) {
      const waiting = this.segments.find((s) => s.kind === 'load');
      const seg = { kind, code: String(code), lang: lang || 'code' };
      if (waiting) {
        Object.keys(waiting).forEach((key) => { if (key !== 'el') delete waiting[key]; });
        Object.assign(waiting, seg);
        this.rerender(waiting);
      } else {
        this.push(seg);
      }
    }

    raw(text) { this.push({ kind: 'raw', text: String(text) }); }

    hasPlaceholders() { return this.segments.some((s) => s.kind === 'load'); }

    isEmpty() { return this.segments.length === 0; }

    /** The answer as markdown again (for "Copy text"). */
    source() {
      return this.segments.map((s) => {
        if (s.kind === 'md' || s.kind === 'raw') return s.text;
        if (s.kind === 'code') return `\`\`\`${s.lang === 'code' ? '' : s.lang}\n${s.code}\`\`\``;
        if (s.kind === 'mermaid') return `\`\`\`mermaid\n${s.code}\`\`\``;
        return '';
      }).join('');
    }
  }

  // -------------------------------------------------------------------------
  // 6. App state, router and shell
  // -------------------------------------------------------------------------

  const state = {
    me: null,
    view: null,           // 'chat' | 'moderation'
    shell: null,          // header, sidebar, main elements
    sidebar: { query: '', showArchived: false, threads: [], seq: 0, error: null, loaded: false },
  };

  let appRoot = null;
  let unauthorizedHandled = false;

  const canModerate = () => Boolean(state.me && (state.me.is_staff || state.me.is_support));
  const normalizeUuid = (uuid) => String(uuid || '').replace(/-/g, '').toLowerCase();

  /** Any 401: forget the token and show the login page (once per session). */
  function onUnauthorized() {
    if (unauthorizedHandled) return;
    unauthorizedHandled = true;
    tokenStore.clear();
    detachStream();
    state.me = null;
    state.shell = null;
    showLogin({ expired: true });
  }

  function parseRoute() {
    const path = (location.hash || '#/').slice(1) || '/';
    const thread = /^\/t\/([0-9a-fA-F-]{32,36})\/?$/.exec(path);
    if (thread) return { name: 'chat', thread: normalizeUuid(thread[1]) };
    if (/^\/moderation\/?$/.test(path)) return { name: 'moderation' };
    return { name: 'chat', thread: null };
  }

  function route() {
    if (!state.me || !state.shell) return;
    const r = parseRoute();
    closeDrawer(false);
    if (r.name === 'moderation') {
      if (!canModerate()) { location.replace('#/'); return; }
      showModeration();
    } else {
      showChat(r.thread);
    }
    highlightCurrentThread();
  }

  window.addEventListener('hashchange', route);

  function go(hash) {
    if (location.hash === hash || (hash === '#/' && !location.hash)) route();
    else location.hash = hash;
  }

  // --- Shell: header + sidebar + main --------------------------------------

  function showShell() {
    const me = state.me;
    const toggle = h('button', {
      type: 'button', class: 'icon-btn sidebar-toggle', 'aria-label': 'Threads', title: 'Threads',
      'aria-expanded': 'false', 'aria-controls': 'sidebar',
    }, icon('menu'));
    toggle.addEventListener('click', () => {
      if (state.shell.root.classList.contains('sidebar-open')) closeDrawer(true);
      else openDrawer();
    });

    const moderationButton = canModerate()
      ? h('button', { type: 'button', class: 'btn btn-ghost header-btn moderation-btn', onclick: () => go('#/moderation') },
        icon('shield'), h('span', { class: 'collapsible-label' }, 'Moderation'))
      : null;

    const logout = h('button', { type: 'button', class: 'btn btn-ghost header-btn', onclick: logOut },
      icon('logout'), h('span', { class: 'collapsible-label' }, 'Log out'));

    const displayName = me.full_name ? `${me.full_name} (${me.username})` : me.username;
    const header = h('header', { class: 'topbar' },
      toggle,
      h('a', { class: 'brand', href: '#/' },
        h('img', { src: '/assets/icon.svg', alt: '', width: '28', height: '28' }),
        h('span', { class: 'brand-name' }, 'Palisade')),
      h('div', { class: 'topbar-spacer' }),
      moderationButton,
      h('span', { class: 'user-chip', title: displayName },
        h('span', { class: 'user-initial', 'aria-hidden': 'true' }, (me.username || '?').slice(0, 1).toUpperCase()),
        h('span', { class: 'user-name' }, me.username)),
      logout);

    // Sidebar
    const searchInput = h('input', {
      type: 'search', id: 'thread-search', class: 'input search-input', placeholder: 'Search chats',
      autocomplete: 'off', spellcheck: 'false',
    });
    let searchTimer = 0;
    searchInput.addEventListener('input', () => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(() => {
        state.sidebar.query = searchInput.value.trim();
        refreshSidebar();
      }, 250);
    });
    searchInput.addEventListener('keydown', (event) => {
      if (event.key === 'Escape' && searchInput.value) {
        event.stopPropagation();
        searchInput.value = '';
        state.sidebar.query = '';
        refreshSidebar();
      }
    });

    const archivedBox = h('input', { type: 'checkbox', id: 'show-archived' });
    archivedBox.addEventListener('change', () => {
      state.sidebar.showArchived = archivedBox.checked;
      refreshSidebar();
    });

    const threadNav = h('nav', { class: 'thread-nav', 'aria-label': 'Threads' });
    const sidebar = h('aside', { class: 'sidebar', id: 'sidebar' },
      h('div', { class: 'sidebar-top' },
        h('button', { type: 'button', class: 'btn btn-primary new-chat', onclick: newChat }, icon('plus'), 'New chat'),
        h('div', { class: 'search-field' },
          h('label', { for: 'thread-search', class: 'visually-hidden' }, 'Search'),
          icon('search', 'search-icon'),
          searchInput),
        h('label', { class: 'check', for: 'show-archived' }, archivedBox, h('span', null, 'Show archived'))),
      threadNav);

    const backdrop = h('div', { class: 'drawer-backdrop', 'aria-hidden': 'true', onclick: () => closeDrawer(true) });
    const main = h('main', { class: 'main', id: 'main' });
    const root = h('div', { class: 'shell' }, header, h('div', { class: 'shell-body' }, sidebar, backdrop, main));

    state.shell = { root, header, sidebar, threadNav, main, toggle, moderationButton, searchInput };
    chat.els = null;
    moderation.els = null;
    appRoot.replaceChildren(root);

    root.addEventListener('keydown', (event) => {
      if (event.key === 'Escape' && root.classList.contains('sidebar-open')) closeDrawer(true);
    });
    refreshSidebar();
  }

  function openDrawer() {
    const { root, toggle, sidebar } = state.shell;
    root.classList.add('sidebar-open');
    toggle.setAttribute('aria-expanded', 'true');
    const first = sidebar.querySelector('.new-chat');
    if (first) first.focus();
  }

  function closeDrawer(returnFocus) {
    if (!state.shell) return;
    const { root, toggle } = state.shell;
    if (!root.classList.contains('sidebar-open')) return;
    root.classList.remove('sidebar-open');
    toggle.setAttribute('aria-expanded', 'false');
    if (returnFocus) toggle.focus();
  }

  function newChat() {
    closeDrawer(false);
    if (chat.threadUuid === null && state.view === 'chat') {
      cancelEdit();
      focusComposer(true);
      return;
    }
    go('#/');
  }

  async function logOut() {
    try {
      await api('/api-auth/logout/', { method: 'POST' });
    } catch (_) { /* the token is dropped either way */ }
    tokenStore.clear();
    detachStream();
    state.me = null;
    state.shell = null;
    history.replaceState(null, '', '#/');
    showLogin();
  }

  // --- Sidebar thread list ---------------------------------------------------

  async function refreshSidebar() {
    if (!state.me) return;
    const sb = state.sidebar;
    const seq = ++sb.seq;
    const params = {
      user: state.me.uuid, o: '-modified', page_size: 50,
      query: sb.query, is_archived: sb.showArchived ? undefined : 'false',
    };
    try {
      const threads = await api(`/api/chat-threads/?${query(params)}`);
      if (seq !== sb.seq) return;
      sb.threads = Array.isArray(threads) ? threads : [];
      sb.error = null;
    } catch (err) {
      if (seq !== sb.seq || err.status === 401) return;
      sb.error = err.message;
    }
    sb.loaded = true;
    renderSidebar();
  }

  function dayGroup(iso, now) {
    const date = new Date(iso);
    const startOfToday = new Date(now.getFullYear(), now.getMonth(), now.getDate()).getTime();
    const day = 86400000;
    const t = date.getTime();
    if (t >= startOfToday) return 'Today';
    if (t >= startOfToday - day) return 'Yesterday';
    if (t >= startOfToday - 7 * day) return 'Previous 7 days';
    if (t >= startOfToday - 30 * day) return 'Previous 30 days';
    return 'Older';
  }

  function renderSidebar() {
    if (!state.shell) return;
    const nav = state.shell.threadNav;
    const sb = state.sidebar;
    // Polls (titles) refresh often: rebuild only when something visible changed,
    // so hover, focus and element references survive.
    const now = new Date();
    const signature = JSON.stringify([sb.error, sb.query, sb.threads.map((t) => [
      t.uuid, t.name, t.is_archived, dayGroup(t.modified, now)])]);
    if (signature === sb.rendered && nav.childElementCount) {
      highlightCurrentThread();
      return;
    }
    sb.rendered = signature;
    const focusedUuid = document.activeElement && nav.contains(document.activeElement)
      ? document.activeElement.closest('[data-thread]')?.dataset.thread : null;
    const focusedIsArchiveButton = Boolean(document.activeElement?.classList.contains('thread-archive'));
    nav.replaceChildren();
    if (sb.error) {
      nav.append(h('p', { class: 'sidebar-note error-text' }, sb.error));
      return;
    }
    if (!sb.threads.length) {
      nav.append(h('p', { class: 'sidebar-note' }, sb.query ? 'No chats match your search.' : 'No chats yet.'));
      return;
    }
    let currentGroup = null;
    let list = null;
    for (const thread of sb.threads) {
      const group = dayGroup(thread.modified, now);
      if (group !== currentGroup) {
        currentGroup = group;
        const headingId = `group-${group.replace(/\W+/g, '-').toLowerCase()}`;
        list = h('ul', { class: 'thread-list', 'aria-labelledby': headingId });
        nav.append(h('div', { class: 'thread-group' }, h('h2', { class: 'thread-group-title', id: headingId }, group), list));
      }
      const uuid = normalizeUuid(thread.uuid);
      const link = h('a', { class: 'thread-link', href: `#/t/${uuid}`, title: thread.name },
        h('span', { class: 'thread-name' }, thread.name || 'Untitled'),
        thread.is_archived ? h('span', { class: 'thread-tag' }, ' Archived') : null);
      link.addEventListener('click', () => closeDrawer(false));
      const archived = thread.is_archived;
      const action = archived ? 'Unarchive' : 'Archive';
      const button = iconButton(archived ? 'unarchive' : 'archive', action,
        () => setArchived(thread, !archived), 'thread-archive');
      list.append(h('li', { class: `thread-item${archived ? ' is-archived' : ''}`, 'data-thread': uuid }, link, button));
    }
    highlightCurrentThread();
    if (focusedUuid) {
      const item = nav.querySelector(`[data-thread="${focusedUuid}"]`);
      const target = item && (focusedIsArchiveButton ? item.querySelector('.thread-archive') : item.querySelector('a'));
      if (target) target.focus();
    }
  }

  function highlightCurrentThread() {
    if (!state.shell) return;
    const current = state.view === 'chat' ? chat.threadUuid : null;
    for (const link of state.shell.threadNav.querySelectorAll('.thread-link')) {
      const uuid = link.parentElement.dataset.thread;
      if (uuid === current) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    if (state.shell.moderationButton) {
      if (state.view === 'moderation') state.shell.moderationButton.setAttribute('aria-current', 'page');
      else state.shell.moderationButton.removeAttribute('aria-current');
    }
  }

  async function setArchived(thread, archive) {
    const uuid = normalizeUuid(thread.uuid);
    const nav = state.shell.threadNav;
    const items = [...nav.querySelectorAll('.thread-item')];
    const index = items.findIndex((li) => li.dataset.thread === uuid);
    try {
      await api(`/api/chat-threads/${uuid}/${archive ? 'archive' : 'unarchive'}/`, { method: 'POST' });
    } catch (err) {
      if (err.status !== 401) toast(err.message);
      return;
    }
    if (chat.thread && normalizeUuid(chat.thread.uuid) === uuid) {
      chat.thread.is_archived = archive;
      renderChatHeader();
    }
    await refreshSidebar();
    // Keep keyboard focus near where it was when the item left the list.
    if (!nav.contains(document.activeElement)) {
      const left = [...nav.querySelectorAll('.thread-item')];
      const next = left[Math.min(index, left.length - 1)];
      if (next) next.querySelector('.thread-archive').focus();
      else state.shell.searchInput.focus();
    }
  }

  /** A short-lived status message (for errors that have no better home). */
  function toast(message) {
    let region = document.querySelector('.toast-region');
    if (!region) {
      region = h('div', { class: 'toast-region', role: 'status', 'aria-live': 'polite' });
      document.body.append(region);
    }
    const item = h('div', { class: 'toast' }, icon('alert'), h('span', null, message));
    region.append(item);
    setTimeout(() => item.remove(), 6000);
  }

  // -------------------------------------------------------------------------
  // 7. View: login
  // -------------------------------------------------------------------------

  function showLogin({ expired = false } = {}) {
    document.title = 'Log in · Palisade';
    state.view = 'login';
    const username = h('input', {
      id: 'login-username', name: 'username', class: 'input', autocomplete: 'username',
      autocapitalize: 'none', spellcheck: 'false',
    });
    const password = h('input', {
      id: 'login-password', name: 'password', type: 'password', class: 'input', autocomplete: 'current-password',
    });
    const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-block' }, 'Log in');
    const errorSlot = h('div', { class: 'form-error-slot' });
    const form = h('form', { class: 'login-form', novalidate: true },
      h('div', { class: 'field' }, h('label', { for: 'login-username' }, 'Username'), username),
      h('div', { class: 'field' }, h('label', { for: 'login-password' }, 'Password'), password),
      errorSlot,
      submit);

    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      if (submit.disabled) return;
      submit.disabled = true;
      form.setAttribute('aria-busy', 'true');
      errorSlot.replaceChildren();
      try {
        const result = await api('/api-auth/password/', {
          method: 'POST', anonymous: true, body: { username: username.value, password: password.value },
        });
        if (!result || typeof result.token !== 'string') throw new ApiError(500, { detail: 'The server did not return a token.' });
        tokenStore.set(result.token);
        unauthorizedHandled = false;
        await startApp();
      } catch (err) {
        errorSlot.replaceChildren(h('div', { class: 'form-error', role: 'alert' }, icon('alert'), h('span', null, err.message)));
        submit.disabled = false;
        form.removeAttribute('aria-busy');
        password.select();
      }
    });

    const card = h('div', { class: 'login-card' },
      h('img', { class: 'login-logo', src: '/assets/icon.svg', alt: '', width: '48', height: '48' }),
      h('h1', { class: 'login-title' }, 'Log in to Palisade'),
      h('p', { class: 'login-subtitle' }, 'Your careful assistant.'),
      expired ? h('p', { class: 'form-note', role: 'status' }, icon('info'), h('span', null, 'Your session has ended. Please log in again.')) : null,
      form);
    appRoot.replaceChildren(h('div', { class: 'login-page' }, h('main', { class: 'login-main' }, card)));
    username.focus();
  }

  // -------------------------------------------------------------------------
  // 8. View: chat
  // -------------------------------------------------------------------------

  const chat = {
    els: null,
    threadUuid: null,     // the open thread; null on a new chat
    thread: null,
    messages: [],         // API fields (is_generating too) + replaced, pending, el, actions, answer, error, retry
    showHistory: false,
    loading: false,
    loadSeq: 0,
    streaming: null,      // the running stream (direct or followed), see "Streaming"
    editing: null,        // the user message being edited
    draftBeforeEdit: '',
  };

  function buildChatView() {
    const title = h('h1', { class: 'chat-title', tabindex: '-1' });
    const titleTag = h('span', { class: 'chat-title-tag', hidden: true }, 'Archived');
    const historyBox = h('input', { type: 'checkbox', id: 'show-history' });
    historyBox.addEventListener('change', () => {
      chat.showHistory = historyBox.checked;
      if (chat.threadUuid && !chat.streaming) loadThread(chat.threadUuid, { keepScroll: true });
    });
    const header = h('div', { class: 'chat-header', hidden: true },
      h('div', { class: 'chat-title-wrap' }, title, titleTag),
      h('label', { class: 'check check-small', for: 'show-history' }, historyBox, h('span', null, 'Show history')));

    const conversation = h('section', { class: 'conversation', 'aria-label': 'Conversation' });
    const scroller = h('div', { class: 'chat-scroll' }, conversation);

    // Composer
    const input = h('textarea', {
      id: 'composer-input', class: 'composer-input', rows: '1', placeholder: 'Message Palisade',
      spellcheck: 'true', autocomplete: 'off',
    });
    const counter = h('span', { class: 'char-counter', hidden: true });
    const send = h('button', { type: 'submit', class: 'send-btn', 'aria-label': 'Send', title: 'Send (Enter)' }, icon('send'));
    const stop = h('button', { type: 'button', class: 'stop-btn', 'aria-label': 'Stop', title: 'Stop generating', hidden: true },
      icon('stop', 'icon-fill'));
    const errorSlot = h('div', { class: 'composer-error-slot' });
    const editBanner = h('div', { class: 'edit-banner', hidden: true },
      icon('edit'), h('span', { class: 'edit-banner-text' }, 'Editing your last message'),
      h('button', { type: 'button', class: 'btn btn-small btn-ghost', onclick: () => cancelEdit(true) }, 'Cancel edit'));
    const form = h('form', { class: 'composer', novalidate: true },
      errorSlot,
      editBanner,
      h('div', { class: 'composer-box' },
        h('label', { for: 'composer-input', class: 'visually-hidden' }, 'Message'),
        input,
        h('div', { class: 'composer-actions' }, counter, stop, send)),
      h('p', { class: 'composer-hint' }, 'Enter to send, Shift+Enter for a new line. Answers can be wrong; check important facts.'));

    form.addEventListener('submit', (event) => {
      event.preventDefault();
      submitComposer();
    });
    input.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
        event.preventDefault();
        submitComposer();
      } else if (event.key === 'Escape' && chat.editing) {
        event.preventDefault();
        cancelEdit(true);
      }
    });
    input.addEventListener('input', updateComposer);
    stop.addEventListener('click', stopStream);

    scroller.addEventListener('scroll', () => {
      chat.stickToBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
    }, { passive: true });

    const view = h('div', { class: 'chat-view' }, header, scroller, h('div', { class: 'composer-wrap' }, form));
    chat.els = { view, header, title, titleTag, historyBox, conversation, scroller, input, counter, send, stop, errorSlot, editBanner, form };
    chat.stickToBottom = true;
    return view;
  }

  function showChat(threadUuid) {
    const main = state.shell.main;
    if (!chat.els) {
      buildChatView();
    }
    if (state.view !== 'chat' || !main.contains(chat.els.view)) {
      main.replaceChildren(chat.els.view);
    }
    const wasView = state.view;
    state.view = 'chat';
    if (threadUuid === chat.threadUuid
        && (chat.streaming || (wasView === 'chat' && (chat.messages.length || chat.loading)))) {
      // Already showing it: the URL was just set for a new thread, or a stream
      // into this conversation is still running (its DOM must stay).
      return;
    }
    if (chat.streaming && chat.streaming.threadUuid !== threadUuid) detachStream();
    cancelEdit(false);
    clearComposerError();
    if (threadUuid) {
      loadThread(threadUuid);
    } else {
      chat.threadUuid = null;
      chat.thread = null;
      chat.messages = [];
      chat.loadSeq += 1;
      chat.loading = false;
      renderChatHeader();
      renderConversation();
      document.title = 'New chat · Palisade';
      focusComposer(false);
    }
    updateComposer();
  }

  function renderChatHeader() {
    const els = chat.els;
    if (!els) return;
    if (!chat.threadUuid) {
      els.header.hidden = true;
      return;
    }
    els.header.hidden = false;
    const name = chat.thread ? chat.thread.name : '';
    els.title.textContent = name || (chat.loading ? 'Loading…' : 'New chat');
    els.titleTag.hidden = !(chat.thread && chat.thread.is_archived);
    els.historyBox.checked = chat.showHistory;
    if (name) document.title = `${name} · Palisade`;
  }

  /**
   * Load a thread's messages and show them. An answer still being generated
   * (is_generating) is then followed live (followAnswer); `followAttempt`
   * counts the follows chained since the thread was opened, so a thread
   * that keeps saying "generating" cannot make the app loop.
   */
  async function loadThread(uuid, { keepScroll = false, followAttempt = 0 } = {}) {
    const seq = ++chat.loadSeq;
    const sameThread = chat.threadUuid === uuid;
    chat.threadUuid = uuid;
    if (!sameThread) {
      chat.thread = null;
      chat.messages = [];
    }
    chat.loading = true;
    renderChatHeader();
    if (!sameThread) chat.els.conversation.replaceChildren(h('div', { class: 'conversation-loading', role: 'status' }, 'Loading conversation…'));
    updateComposer();
    const history = chat.showHistory ? '&include_history=true' : '';
    try {
      const [thread, messages] = await Promise.all([
        api(`/api/chat-threads/${uuid}/`),
        api(`/api/chat-messages/?thread=${uuid}${history}`),
      ]);
      if (seq !== chat.loadSeq) return;
      chat.thread = thread;
      const replacedUuids = new Set(messages.map((m) => m.replaces).filter(Boolean).map(normalizeUuid));
      chat.messages = messages.map((m) => ({
        ...m,
        uuid: normalizeUuid(m.uuid),
        replaced: replacedUuids.has(normalizeUuid(m.uuid)),
      }));
      // Only the owner may follow (staff opening another user's thread just see the text so far).
      const running = findLast(chat.messages, (m) => !m.replaced && m.role === 'assistant' && m.is_generating);
      const own = Boolean(thread && state.me && thread.user_username === state.me.username);
      const follow = running && own && !chat.streaming && followAttempt < MAX_FOLLOWS ? running : null;
      if (follow) follow.pending = true;
      chat.loading = false;
      const scrollTop = chat.els.scroller.scrollTop;
      renderChatHeader();
      renderConversation();
      if (keepScroll) chat.els.scroller.scrollTop = scrollTop;
      else scrollToBottom(true);
      if (!keepScroll) focusComposer(false);
      if (follow) followAnswer(follow, followAttempt);
    } catch (err) {
      if (seq !== chat.loadSeq || err.status === 401) return;
      chat.loading = false;
      chat.thread = null;
      chat.messages = [];
      renderChatHeader();
      chat.els.title.textContent = err.status === 404 ? 'Chat not found' : 'Could not load this chat';
      document.title = 'Palisade';
      chat.els.conversation.replaceChildren(h('div', { class: 'notice notice-error', role: 'alert' },
        icon('alert'),
        h('span', null, err.status === 404 ? 'This chat does not exist, or you cannot see it.' : err.message),
        h('a', { class: 'btn btn-small', href: '#/' }, 'Start a new chat')));
    }
    updateComposer();
  }

  const SUGGESTIONS = [
    { icon: 'book', title: 'Explain a concept', text: 'Explain how public-key cryptography works, with a simple example.' },
    { icon: 'code', title: 'Write some code', text: 'Write a Python function that checks whether a string is a palindrome, with tests.' },
    { icon: 'mail', title: 'Draft an email', text: 'Draft a short, friendly email asking a colleague to review my pull request.' },
    { icon: 'list', title: 'Make a plan', text: 'Make a one-week plan to learn the basics of SQL.' },
  ];

  function emptyState() {
    const hour = new Date().getHours();
    const greeting = hour < 5 ? 'Good evening' : hour < 12 ? 'Good morning' : hour < 18 ? 'Good afternoon' : 'Good evening';
    const name = state.me ? (state.me.full_name || state.me.username).split(' ')[0] : '';
    return h('div', { class: 'empty-state' },
      h('img', { class: 'empty-logo', src: '/assets/icon.svg', alt: '', width: '48', height: '48' }),
      h('h1', { class: 'empty-title' }, name ? `${greeting}, ${name}` : greeting),
      h('p', { class: 'empty-subtitle' }, 'How can I help you today?'),
      h('ul', { class: 'suggestions' }, SUGGESTIONS.map((s) => h('li', null,
        h('button', {
          type: 'button', class: 'suggestion',
          onclick: () => {
            chat.els.input.value = s.text;
            updateComposer();
            focusComposer(true);
          },
        }, icon(s.icon), h('span', { class: 'suggestion-title' }, s.title), h('span', { class: 'suggestion-text' }, s.text))))));
  }

  function renderConversation() {
    const section = chat.els.conversation;
    section.replaceChildren();
    if (!chat.messages.length) {
      if (!chat.threadUuid) section.append(emptyState());
      else if (!chat.loading) section.append(h('p', { class: 'conversation-note' }, 'No messages in this chat yet.'));
      return;
    }
    for (const msg of chat.messages) section.append(renderMessage(msg));
    refreshActions();
  }

  function renderMessage(msg) {
    const isUser = msg.role === 'user';
    const article = h('article', {
      class: `message message-${isUser ? 'user' : 'assistant'}${msg.replaced ? ' is-replaced' : ''}`,
      'data-role': msg.role,
    });
    if (msg.uuid) article.dataset.uuid = msg.uuid;
    msg.el = article;
    msg.actions = h('div', { class: 'message-actions' });
    if (isUser) {
      msg.body = h('div', { class: 'user-text' }, msg.content);
      article.append(h('div', { class: 'bubble' }, msg.body));
      if (msg.warning) article.append(guardWarning(msg.warning));
    } else {
      const content = h('div', { class: 'markdown' });
      msg.answer = Answer.fromStored(content, msg.content || '');
      if (msg.is_generating && !msg.pending) {
        content.append(h('p', { class: 'muted-note' }, 'This answer is still being written.'));
      } else if (!msg.pending && !msg.content) {
        content.append(h('p', { class: 'muted-note' }, 'This answer was interrupted before any text was written.'));
      }
      article.append(
        h('div', { class: 'avatar', 'aria-hidden': 'true' }, h('img', { src: '/assets/icon.svg', alt: '', width: '28', height: '28' })),
        h('div', { class: 'assistant-body' }, content));
      msg.contentEl = content;
    }
    if (msg.replaced) article.append(h('p', { class: 'replaced-note' }, 'Earlier version'));
    article.append(msg.actions);
    return article;
  }

  function guardWarning(text) {
    return h('p', { class: 'guard-warning', role: 'note' }, icon('shield'), h('span', null, text));
  }

  /** Edit on the last user message, Regenerate on the last answer; Copy everywhere. */
  function refreshActions() {
    const active = chat.messages.filter((m) => !m.replaced);
    const busy = Boolean(chat.streaming) || chat.loading;
    const lastUser = findLast(active, (m) => m.role === 'user');
    const last = active[active.length - 1];
    for (const msg of chat.messages) {
      if (!msg.actions) continue;
      msg.el.classList.toggle('is-being-edited', chat.editing === msg);
      msg.actions.replaceChildren();
      if (msg.pending) continue;
      const hasText = msg.role === 'assistant' ? Boolean(msg.answer && !msg.answer.isEmpty()) : Boolean(msg.content);
      const copy = iconButton('copy', 'Copy text', async () => {
        const ok = await copyText(msg.role === 'assistant' && msg.answer ? msg.answer.source() : msg.content || '');
        copy.replaceChildren(icon(ok ? 'check' : 'alert'));
        setTimeout(() => copy.replaceChildren(icon('copy')), 1500);
      });
      if (hasText) msg.actions.append(copy);
      if (busy || msg.replaced) continue;
      if (msg.role === 'assistant' && msg === last && !msg.error && lastUser && chat.threadUuid) {
        msg.actions.append(iconButton('refresh', 'Regenerate', () => regenerate()));
      }
      if (msg.role === 'user' && msg === lastUser && msg.uuid && chat.editing !== msg) {
        msg.actions.append(iconButton('edit', 'Edit', () => startEdit(msg)));
      }
    }
  }

  // --- Composer ----------------------------------------------------------------

  function focusComposer(force) {
    if (!chat.els) return;
    if (force || (!coarsePointer() && !narrowScreen())) chat.els.input.focus({ preventScroll: true });
  }

  function autoGrow() {
    const input = chat.els.input;
    input.style.height = 'auto';
    input.style.height = `${Math.min(input.scrollHeight, 260)}px`;
  }

  function updateComposer() {
    const els = chat.els;
    if (!els) return;
    const count = charCount(els.input.value);
    const over = count > MAX_INPUT_CHARS;
    els.counter.hidden = count <= COUNTER_FROM_CHARS;
    els.counter.textContent = `${count} / ${MAX_INPUT_CHARS}`;
    els.counter.classList.toggle('over-limit', over);
    const streaming = Boolean(chat.streaming);
    els.send.disabled = streaming || over || chat.loading || !els.input.value.trim();
    els.stop.hidden = !streaming;
    els.stop.disabled = Boolean(chat.streaming && chat.streaming.stopRequested);
    els.form.classList.toggle('is-editing', Boolean(chat.editing));
    els.editBanner.hidden = !chat.editing;
    autoGrow();
  }

  function submitComposer() {
    const els = chat.els;
    const text = els.input.value;
    if (chat.streaming || chat.loading || !text.trim() || charCount(text) > MAX_INPUT_CHARS) return;
    if (chat.editing) {
      const target = chat.editing;
      chat.editing = null;
      els.input.value = chat.draftBeforeEdit;
      chat.draftBeforeEdit = '';
      startStream({ input: text, mode: 'edit', editMsg: target });
    } else {
      els.input.value = '';
      startStream({ input: text });
    }
    updateComposer();
  }

  function startEdit(msg) {
    if (chat.streaming) return;
    if (!chat.editing) chat.draftBeforeEdit = chat.els.input.value;
    chat.editing = msg;
    chat.els.input.value = msg.content || '';
    updateComposer();
    refreshActions();
    focusComposer(true);
    const input = chat.els.input;
    input.setSelectionRange(input.value.length, input.value.length);
  }

  function cancelEdit(focus) {
    if (!chat.editing) return;
    chat.editing = null;
    if (chat.els) {
      chat.els.input.value = chat.draftBeforeEdit;
      updateComposer();
      refreshActions();
      if (focus) focusComposer(true);
    }
    chat.draftBeforeEdit = '';
  }

  function showComposerError(message) {
    chat.els.errorSlot.replaceChildren(h('div', { class: 'composer-error', role: 'alert' },
      icon('alert'), h('span', null, message),
      iconButton('close', 'Dismiss', clearComposerError, 'icon-btn-small')));
  }

  function clearComposerError() {
    if (chat.els) chat.els.errorSlot.replaceChildren();
  }

  function scrollToBottom(force) {
    const scroller = chat.els.scroller;
    if (force || chat.stickToBottom) {
      scroller.scrollTop = scroller.scrollHeight;
      chat.stickToBottom = true;
    }
  }

  // --- Streaming -------------------------------------------------------------
  // Two ways an answer arrives, rendered by one reader (readAnswer):
  //   - direct: POST /api/chat/stream/ (startStream), for what the user sends;
  //   - followed: GET /api/chat-threads/<uuid>/stream/ (followAnswer), for an
  //     answer still being generated when the thread is opened (page reload,
  //     switching back to it). It replays the answer's lines from the first,
  //     then the live ones; when it ends the thread is loaded again.
  // Either way chat.streaming is the running stream: Stop shows, Send and
  // the message actions are off, and switching threads detaches it (the
  // server goes on generating and storing).

  /** How many follows in a row one opening of a thread may chain. */
  const MAX_FOLLOWS = 3;

  function lastActive(role) {
    return findLast(chat.messages, (m) => !m.replaced && m.role === role);
  }

  function regenerate() {
    const lastUser = lastActive('user');
    if (!lastUser || !chat.threadUuid) return;
    startStream({ input: lastUser.content, mode: 'reload' });
  }

  /**
   * Retry after a broken connection: the server may still be generating, so
   * show what is stored and follow the answer if it runs (or answer again
   * when the thread never became known).
   */
  function resumeRetry(stream) {
    const uuid = stream.threadUuid;
    if (!uuid) return regenerate;
    return () => {
      if (chat.threadUuid === uuid) loadThread(uuid, { keepScroll: true });
    };
  }

  function removeMessagesAfter(msg) {
    const index = chat.messages.indexOf(msg);
    const removed = chat.messages.splice(index + 1);
    for (const m of removed) if (m.el) m.el.remove();
  }

  /** Keep only the newest Retry: an old error cannot be retried any more. */
  function retireOldRetries() {
    for (const button of chat.els.conversation.querySelectorAll('.stream-error .retry-btn')) button.remove();
  }

  /** Marks an answer as being written; returns its "writing…" indicator. */
  function showWriting(assistant) {
    assistant.el.classList.add('is-streaming');
    assistant.el.setAttribute('aria-busy', 'true');
    const typing = h('div', { class: 'typing', role: 'status' },
      h('span', { class: 'dots', 'aria-hidden': 'true' }, h('span'), h('span'), h('span')), srOnly('Palisade is writing…'));
    assistant.contentEl.append(typing);
    return typing;
  }

  function endWriting(assistant) {
    assistant.pending = false;
    assistant.el.classList.remove('is-streaming');
    assistant.el.removeAttribute('aria-busy');
  }

  /**
   * Send `input` and stream the answer. mode: null (new message), 'reload'
   * (answer the last user message again) or 'edit' (replace editMsg).
   */
  async function startStream({ input, mode = null, editMsg = null }) {
    if (chat.streaming || !chat.els) return;
    clearComposerError();
    retireOldRetries();
    const threadUuid = chat.threadUuid;
    if (!chat.messages.length) chat.els.conversation.replaceChildren();

    // Optimistic view: what the conversation will look like once stored.
    let userMsg;
    let previousContent = null;
    if (mode === 'reload') {
      userMsg = lastActive('user');
      if (userMsg) removeMessagesAfter(userMsg);
    } else if (mode === 'edit') {
      userMsg = editMsg;
      previousContent = userMsg.content;
      removeMessagesAfter(userMsg);
      userMsg.content = input;
      userMsg.body.textContent = input;
      userMsg.el.querySelectorAll('.guard-warning').forEach((el) => el.remove());
      delete userMsg.el.dataset.uuid;
    } else {
      userMsg = { role: 'user', content: input, local: true };
      chat.messages.push(userMsg);
      chat.els.conversation.append(renderMessage(userMsg));
    }
    const assistant = { role: 'assistant', content: '', pending: true, local: true };
    chat.messages.push(assistant);
    chat.els.conversation.append(renderMessage(assistant));
    const typing = showWriting(assistant);
    const removeTyping = () => { if (typing.isConnected) typing.remove(); };

    const stream = {
      controller: new AbortController(), threadUuid, stopRequested: false, detached: false,
      assistant, userMsg, answer: assistant.answer, mode, input,
      beforeContent: removeTyping, removeTyping,
    };
    chat.streaming = stream;
    updateComposer();
    refreshActions();
    scrollToBottom(true);

    const body = { input };
    if (threadUuid) body.thread_uuid = threadUuid;
    if (mode) body.mode = mode;
    if (mode === 'edit') body.edit_message_uuid = editMsg.uuid;

    let response;
    try {
      response = await api('/api/chat/stream/', { method: 'POST', body, raw: true, signal: stream.controller.signal });
    } catch (err) {
      if (stream.detached) return;
      chat.streaming = null;
      if (err.status === 401) return;
      preStreamFailed(stream, err, previousContent, editMsg);
      return;
    }
    const result = await readAnswer(stream, response);
    if (!result) return;
    await finishStream(stream, result.final);
  }

  /**
   * Render the NDJSON lines of an answer into stream.assistant (the same
   * for a direct and a followed stream). Before each content line it calls
   * stream.beforeContent(). Returns { final, failed } (final: the last
   * metadata line, if it came), or null when the stream was detached.
   */
  async function readAnswer(stream, response) {
    const { assistant, userMsg } = stream;
    let final = null;
    let failed = false;
    const answer = () => {
      stream.beforeContent();
      return stream.answer;
    };
    try {
      for await (const line of readNdjson(response)) {
        if (stream.detached) return null;
        if (line.m && typeof line.m === 'object') {
          if (line.m.thread_uuid) onThreadKnown(stream, normalizeUuid(line.m.thread_uuid));
          if ('assistant_message_uuid' in line.m || 'user_message_uuid' in line.m) final = line.m;
        } else if (typeof line.w === 'string') {
          if (userMsg && userMsg.el) {
            userMsg.warning = line.w;
            userMsg.el.querySelectorAll('.guard-warning').forEach((el) => el.remove());
            userMsg.el.insertBefore(guardWarning(line.w), userMsg.actions);
          }
        } else if (typeof line.e === 'string') {
          answer();
          failed = true;
          showStreamError(assistant, line.e);
        } else if (line.k === 'markdown') {
          answer().appendMarkdown(String(line.c ?? ''));
        } else if (line.k === 'load') {
          answer().startBlock(line.t);
        } else if (line.k === 'code') {
          answer().completeBlock('code', line.c ?? '', line.t);
        } else if (line.k === 'mermaid') {
          answer().completeBlock('mermaid', line.c ?? '', 'mermaid');
        } else if ('c' in line) {
          answer().raw(line.c ?? '');
        }
        scrollToBottom(false);
      }
    } catch (err) {
      if (stream.detached) return null;
      if (!failed) {
        failed = true;
        stream.removeTyping();
        showStreamError(assistant, 'The connection was interrupted before the answer was complete.', resumeRetry(stream));
      }
    }
    if (stream.detached) return null;
    stream.removeTyping();
    if (!final && !failed) {
      failed = true;
      showStreamError(assistant, 'The answer ended unexpectedly.', resumeRetry(stream));
    }
    return { final, failed };
  }

  function onThreadKnown(stream, uuid) {
    stream.threadUuid = uuid;
    if (stream.stopRequested) sendCancel(uuid);
    if (chat.threadUuid !== uuid) {
      chat.threadUuid = uuid;
      chat.thread = { uuid, name: 'New chat', is_archived: false };
      history.replaceState(null, '', `#/t/${uuid}`);
      renderChatHeader();
      document.title = 'New chat · Palisade';
      refreshSidebar();
    }
  }

  /** An error inside an answer, with Retry (by default: answer the last question again). */
  function showStreamError(msg, text, onRetry = regenerate) {
    msg.error = text;
    msg.retry = onRetry;
    msg.el.querySelectorAll('.stream-error').forEach((el) => el.remove());
    const retry = h('button', { type: 'button', class: 'btn btn-small retry-btn' }, icon('refresh'), 'Retry');
    retry.addEventListener('click', () => {
      if (chat.streaming) return;
      onRetry();
    });
    msg.el.querySelector('.assistant-body').append(h('div', { class: 'stream-error', role: 'alert' },
      icon('alert'), h('span', { class: 'stream-error-text' }, text), retry));
  }

  /** An error before any line was streamed: undo the optimistic view and say why. */
  async function preStreamFailed(stream, err, previousContent, editMsg) {
    const { userMsg, assistant, mode, input } = stream;
    const index = chat.messages.indexOf(assistant);
    if (index >= 0) chat.messages.splice(index, 1);
    assistant.el.remove();
    if (mode === null && userMsg) {
      const i = chat.messages.indexOf(userMsg);
      if (i >= 0) chat.messages.splice(i, 1);
      userMsg.el.remove();
      if (!chat.els.input.value.trim()) chat.els.input.value = input;
      if (!chat.messages.length) renderConversation();
    }
    updateComposer();
    showComposerError(err.message);
    if (mode === 'edit' || mode === 'reload') {
      // Show what is stored again, and for an edit keep the new text to retry.
      if (mode === 'edit' && previousContent !== null) userMsg.content = previousContent;
      await loadThread(chat.threadUuid, { keepScroll: true });
      if (mode === 'edit' && editMsg) {
        const target = chat.messages.find((m) => m.uuid === editMsg.uuid);
        if (target) {
          startEdit(target);
          chat.els.input.value = input;
          updateComposer();
        }
      }
      showComposerError(err.message);
    }
    refreshActions();
    focusComposer(false);
  }

  /** The note under an answer that was stopped. */
  function stoppedNote(empty) {
    return h('p', { class: 'muted-note' }, empty ? 'Stopped before any text was written.' : 'Stopped.');
  }

  async function finishStream(stream, final) {
    const { assistant, userMsg, answer } = stream;
    if (final) {
      if (final.user_message_uuid && userMsg) {
        userMsg.uuid = normalizeUuid(final.user_message_uuid);
        userMsg.el.dataset.uuid = userMsg.uuid;
      }
      if (final.assistant_message_uuid) {
        assistant.uuid = normalizeUuid(final.assistant_message_uuid);
        assistant.el.dataset.uuid = assistant.uuid;
      }
    }
    endWriting(assistant);
    assistant.content = answer.source();
    if (stream.stopRequested && !assistant.error) {
      assistant.contentEl.append(stoppedNote(answer.isEmpty()));
    } else if (answer.isEmpty() && !assistant.error) {
      assistant.contentEl.append(h('p', { class: 'muted-note' }, 'No answer.'));
    }
    chat.streaming = null;
    updateComposer();
    refreshActions();

    // A block still open when the answer ended is never streamed, but it is stored.
    if (answer.hasPlaceholders() && assistant.uuid && stream.threadUuid) {
      try {
        const messages = await api(`/api/chat-messages/?thread=${stream.threadUuid}`);
        const stored = messages.find((m) => normalizeUuid(m.uuid) === assistant.uuid);
        if (stored && assistant.el.isConnected) {
          assistant.content = stored.content;
          assistant.contentEl.replaceChildren();
          assistant.answer = Answer.fromStored(assistant.contentEl, stored.content);
        }
      } catch (_) { /* keep the placeholder */ }
    }

    if (chat.showHistory && stream.mode && stream.threadUuid === chat.threadUuid) {
      loadThread(chat.threadUuid, { keepScroll: true });
    }
    refreshSidebar();
    scheduleTitleRefresh(stream.threadUuid);
    if (document.activeElement === document.body) focusComposer(false);
  }

  /**
   * Follow `assistant`, an answer loadThread found still being generated
   * (is_generating), through the thread's stream endpoint, which replays the
   * lines from the first: the stored text so far stays on screen until the
   * first content line, then the answer is rendered from the lines. 204: it
   * has just ended. Either way the thread is loaded again at the end.
   */
  async function followAnswer(assistant, attempt) {
    if (chat.streaming || !chat.els || !chat.threadUuid) return;
    const threadUuid = chat.threadUuid;
    const index = chat.messages.indexOf(assistant);
    const userMsg = findLast(chat.messages.slice(0, index), (m) => !m.replaced && m.role === 'user');
    const typing = showWriting(assistant);
    const removeTyping = () => { if (typing.isConnected) typing.remove(); };
    let replaying = false;
    const stream = {
      controller: new AbortController(), threadUuid, stopRequested: false, detached: false,
      assistant, userMsg, answer: assistant.answer, mode: null, input: userMsg ? userMsg.content : '',
      removeTyping,
      beforeContent: () => {
        if (replaying) return;
        replaying = true;
        assistant.contentEl.replaceChildren();
        stream.answer = new Answer(assistant.contentEl);
        assistant.answer = stream.answer;
      },
    };
    chat.streaming = stream;
    updateComposer();
    refreshActions();
    scrollToBottom(false);

    let response;
    try {
      response = await api(`/api/chat-threads/${threadUuid}/stream/`, { raw: true, signal: stream.controller.signal });
    } catch (err) {
      if (stream.detached) return;
      chat.streaming = null;
      if (err.status === 401) return;
      removeTyping();
      endWriting(assistant);
      showStreamError(assistant, `Could not follow this answer: ${err.message}`, resumeRetry(stream));
      updateComposer();
      refreshActions();
      return;
    }
    if (response.status !== 204) {
      const result = await readAnswer(stream, response);
      if (!result) return;
    }
    await finishFollow(stream, attempt);
  }

  /**
   * A followed answer ended: load the thread again (the stored answer is the
   * one to keep), then put back what only the stream said: an error with its
   * Retry, "Stopped.", the PII warning on the question.
   */
  async function finishFollow(stream, attempt) {
    const { assistant, userMsg, threadUuid } = stream;
    stream.removeTyping();
    endWriting(assistant);
    chat.streaming = null;
    const error = assistant.error ? { text: assistant.error, retry: assistant.retry } : null;
    const stopped = stream.stopRequested && !error;
    const warning = userMsg && userMsg.warning;
    await loadThread(threadUuid, { keepScroll: true, followAttempt: attempt + 1 });
    refreshSidebar();
    scheduleTitleRefresh(threadUuid);
    if (chat.threadUuid !== threadUuid || !chat.thread) return;
    if (!chat.streaming) {
      const answer = assistant.uuid && chat.messages.find((m) => m.uuid === assistant.uuid);
      if (answer && answer.el) {
        if (error) {
          showStreamError(answer, error.text, error.retry);
        } else if (stopped) {
          answer.contentEl.querySelectorAll('.muted-note').forEach((el) => el.remove());
          answer.contentEl.append(stoppedNote(!answer.content));
        }
      }
    }
    const question = warning && userMsg.uuid && chat.messages.find((m) => m.uuid === userMsg.uuid);
    if (question && question.el) {
      question.warning = warning;
      question.el.insertBefore(guardWarning(warning), question.actions);
    }
    refreshActions();
    scrollToBottom(false);
    if (document.activeElement === document.body) focusComposer(false);
  }

  /**
   * New threads get a generated title around the end of the answer: look at
   * once (the heading then matches the sidebar), then poll a few times.
   */
  function scheduleTitleRefresh(uuid) {
    if (!uuid) return;
    const delays = [0, 2000, 5000, 10000];
    const attempt = async (n) => {
      if (!state.me) return;
      try {
        const thread = await api(`/api/chat-threads/${uuid}/`);
        if (chat.threadUuid === uuid && thread) {
          chat.thread = { ...(chat.thread || {}), ...thread };
          renderChatHeader();
        }
        refreshSidebar();
        if (thread && thread.name === 'New chat' && n + 1 < delays.length) {
          setTimeout(() => attempt(n + 1), delays[n + 1] - delays[n]);
        }
      } catch (_) { /* the next send refreshes it */ }
    };
    setTimeout(() => attempt(0), delays[0]);
  }

  function sendCancel(uuid) {
    api(`/api/chat-threads/${uuid}/cancel/`, { method: 'POST' }).catch((err) => {
      if (err.status !== 401) toast(err.message);
    });
  }

  function stopStream() {
    const stream = chat.streaming;
    if (!stream || stream.stopRequested) return;
    stream.stopRequested = true;
    updateComposer();
    // Before the first line the thread may not exist yet; onThreadKnown cancels then.
    if (stream.threadUuid) sendCancel(stream.threadUuid);
  }

  /** Stop reading the current stream (the server keeps generating and storing). */
  function detachStream() {
    const stream = chat.streaming;
    if (!stream) return;
    stream.detached = true;
    chat.streaming = null;
    try { stream.controller.abort(); } catch (_) { /* ignore */ }
  }

  // -------------------------------------------------------------------------
  // 9. View: moderation
  // -------------------------------------------------------------------------
  // Flagged threads of all users (staff and support), filtered by severity;
  // a row opens the thread's messages with the guards' verdict per message.

  const SEVERITIES = ['low', 'medium', 'high', 'critical'];

  const moderation = {
    els: null,
    severity: '',
    threads: [],
    selected: null,
    seq: 0,
    detailSeq: 0,
  };

  function severityBadge(level) {
    const value = String(level || 'none').toLowerCase();
    return h('span', { class: `badge severity-${value}` }, value);
  }

  function actionBadge(action) {
    const value = String(action || 'allow').toLowerCase();
    return h('span', { class: `badge action-${value}` }, value);
  }

  function buildModerationView() {
    const select = h('select', { id: 'severity-filter', class: 'input select' },
      h('option', { value: '' }, 'All'),
      SEVERITIES.map((s) => h('option', { value: s }, s)));
    select.addEventListener('change', () => {
      moderation.severity = select.value;
      loadFlagged();
    });
    const tbody = h('tbody');
    const tableArea = h('div', { class: 'table-area' });
    const detail = h('div', { class: 'card detail-card', hidden: true, tabindex: '-1' });
    const section = h('section', { class: 'moderation', 'aria-label': 'Moderation' },
      h('header', { class: 'page-header' },
        h('h1', { class: 'page-title', tabindex: '-1' }, 'Moderation'),
        h('p', { class: 'page-subtitle' }, 'Threads the input guards flagged, across all users.')),
      h('div', { class: 'card' },
        h('div', { class: 'card-header' },
          h('h2', { class: 'card-title' }, 'Flagged threads'),
          h('div', { class: 'inline-field' }, h('label', { for: 'severity-filter' }, 'Severity'), select)),
        tableArea),
      detail,
      state.me.is_staff ? buildPlayground() : null);
    const view = h('div', { class: 'page-scroll' }, h('div', { class: 'page' }, section));
    moderation.els = { view, select, tbody, tableArea, detail, section };
    return view;
  }

  function showModeration() {
    if (chat.editing) cancelEdit(false);
    if (!moderation.els) buildModerationView();
    state.view = 'moderation';
    state.shell.main.replaceChildren(moderation.els.view);
    document.title = 'Moderation · Palisade';
    moderation.els.select.value = moderation.severity;
    loadFlagged();
    const title = moderation.els.section.querySelector('.page-title');
    if (title) title.focus({ preventScroll: true });
  }

  async function loadFlagged() {
    const seq = ++moderation.seq;
    const { tableArea } = moderation.els;
    if (!moderation.threads.length) tableArea.replaceChildren(h('p', { class: 'table-note', role: 'status' }, 'Loading…'));
    const params = { is_flagged: 'true', max_severity: moderation.severity, o: '-modified', page_size: 100 };
    try {
      const threads = await api(`/api/chat-threads/?${query(params)}`);
      if (seq !== moderation.seq) return;
      moderation.threads = Array.isArray(threads) ? threads : [];
      renderFlaggedTable();
    } catch (err) {
      if (seq !== moderation.seq || err.status === 401) return;
      tableArea.replaceChildren(h('p', { class: 'notice notice-error', role: 'alert' }, icon('alert'), h('span', null, err.message)));
    }
  }

  function renderFlaggedTable() {
    const { tableArea } = moderation.els;
    if (!moderation.threads.length) {
      tableArea.replaceChildren(h('p', { class: 'table-note' },
        moderation.severity ? `No flagged threads with severity ${moderation.severity}.` : 'No flagged threads. All quiet.'));
      return;
    }
    const rows = moderation.threads.map((thread) => {
      const uuid = normalizeUuid(thread.uuid);
      const open = h('button', { type: 'button', class: 'link-button' }, thread.name || 'Untitled');
      const row = h('tr', { class: 'clickable-row', 'data-thread': uuid },
        h('td', { class: 'cell-name' }, open),
        // Username only: the full name is in the tooltip and the detail header.
        h('td', { class: 'cell-owner', title: thread.user_full_name || null }, thread.user_username),
        h('td', null, severityBadge(thread.max_severity)),
        h('td', { class: 'cell-num hide-narrow' }, String(thread.message_count)),
        h('td', { class: 'cell-date hide-narrow' }, h('time', { datetime: thread.modified }, formatDateTime(thread.modified))));
      if (moderation.selected === uuid) row.setAttribute('aria-current', 'true');
      row.addEventListener('click', () => openModeratedThread(thread));
      return row;
    });
    const table = h('table', { class: 'data-table' },
      h('thead', null, h('tr', null,
        h('th', { scope: 'col' }, 'Thread'), h('th', { scope: 'col' }, 'Owner'), h('th', { scope: 'col' }, 'Severity'),
        h('th', { scope: 'col', class: 'cell-num hide-narrow' }, 'Messages'),
        h('th', { scope: 'col', class: 'hide-narrow' }, 'Last activity'))),
      h('tbody', null, rows));
    tableArea.replaceChildren(h('div', { class: 'table-scroll' }, table));
  }

  async function openModeratedThread(thread) {
    const uuid = normalizeUuid(thread.uuid);
    moderation.selected = uuid;
    for (const row of moderation.els.tableArea.querySelectorAll('tr[data-thread]')) {
      if (row.dataset.thread === uuid) row.setAttribute('aria-current', 'true');
      else row.removeAttribute('aria-current');
    }
    const seq = ++moderation.detailSeq;
    const { detail } = moderation.els;
    const close = iconButton('close', 'Close details', () => {
      detail.hidden = true;
      moderation.selected = null;
      renderFlaggedTable();
    });
    const header = h('div', { class: 'card-header card-header-tight' },
      h('div', { class: 'card-header-main' },
        h('h2', { class: 'card-title' }, thread.name || 'Untitled'),
        h('p', { class: 'card-subtitle' }, `${thread.user_username}${thread.user_full_name ? ` (${thread.user_full_name})` : ''} · `,
          severityBadge(thread.max_severity), ` · ${thread.message_count} messages`)),
      close);
    const body = h('div', { class: 'detail-body' }, h('p', { class: 'table-note', role: 'status' }, 'Loading messages…'));
    detail.replaceChildren(header, body);
    detail.hidden = false;
    detail.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
    try {
      const messages = await api(`/api/chat-messages/?thread=${uuid}&include_history=true`);
      if (seq !== moderation.detailSeq) return;
      const replaced = new Set(messages.map((m) => m.replaces).filter(Boolean).map(normalizeUuid));
      if (!messages.length) {
        body.replaceChildren(h('p', { class: 'table-note' }, 'This thread has no messages.'));
        return;
      }
      body.replaceChildren(h('ol', { class: 'mod-messages' }, messages.map((m) => moderatedMessage(m, replaced.has(normalizeUuid(m.uuid))))));
    } catch (err) {
      if (seq !== moderation.detailSeq || err.status === 401) return;
      body.replaceChildren(h('p', { class: 'notice notice-error', role: 'alert' }, icon('alert'), h('span', null, err.message)));
    }
  }

  function categoryList(items) {
    if (!Array.isArray(items) || !items.length) return h('span', { class: 'muted' }, 'none');
    return h('span', { class: 'tags' }, items.map((c) => h('code', { class: 'tag' }, c)));
  }

  function moderatedMessage(m, isReplaced) {
    const flagged = m.is_flagged;
    const level = String(m.severity || 'none').toLowerCase();
    return h('li', { class: `mod-message sev-${level}${flagged ? ' is-flagged' : ''}${isReplaced ? ' is-replaced' : ''}` },
      h('div', { class: 'mod-message-head' },
        h('span', { class: `role-label role-${m.role}` }, m.role === 'user' ? 'User' : m.role === 'assistant' ? 'Assistant' : m.role),
        m.severity !== undefined ? severityBadge(m.severity) : null,
        isReplaced ? h('span', { class: 'chip' }, 'replaced') : null,
        h('time', { class: 'mod-time', datetime: m.created }, formatDateTime(m.created))),
      m.severity !== undefined
        ? h('dl', { class: 'mod-facts' },
          h('div', null, h('dt', null, 'Injection'), h('dd', { class: 'injection-categories' }, categoryList(m.injection_categories))),
          h('div', null, h('dt', null, 'PII'), h('dd', { class: 'pii-categories' }, categoryList(m.pii_categories))),
          h('div', null, h('dt', null, 'Action'), h('dd', { class: 'action-taken' }, actionBadge(m.action_taken))))
        : null,
      h('div', { class: 'mod-content' }, m.content));
  }

  // -------------------------------------------------------------------------
  // 10. View: guard playground (staff)
  // -------------------------------------------------------------------------
  // Scans a text with the input guards and shows the verdict. Spans in the
  // verdict are UTF-8 byte offsets; JS strings index UTF-16 code units.

  /** A function from UTF-8 byte offset to UTF-16 index in `text`. */
  function byteOffsetMapper(text) {
    const bytes = [0];
    const units = [0];
    let b = 0;
    for (let i = 0; i < text.length;) {
      const cp = text.codePointAt(i);
      const width = cp > 0xffff ? 2 : 1;
      b += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
      i += width;
      bytes.push(b);
      units.push(i);
    }
    return (offset) => {
      // Largest boundary ≤ offset (binary search).
      let lo = 0;
      let hi = bytes.length - 1;
      if (offset >= bytes[hi]) return units[hi];
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (bytes[mid] <= offset) lo = mid; else hi = mid - 1;
      }
      return units[lo];
    };
  }

  /** Overlapping spans of one kind become one span (nested matches, one mark). */
  function unionByKind(spans) {
    const merged = [];
    for (const kind of new Set(spans.map((s) => s.kind))) {
      const sorted = spans.filter((s) => s.kind === kind).sort((a, b) => a.start - b.start || b.end - a.end);
      let current = null;
      for (const s of sorted) {
        if (current && s.start < current.end) {
          current.end = Math.max(current.end, s.end);
          if (!current.labels.includes(s.label)) current.labels.push(s.label);
        } else {
          current = { kind, start: s.start, end: s.end, labels: [s.label] };
          merged.push(current);
        }
      }
    }
    return merged.map((s, i) => ({ id: `u${i}`, kind: s.kind, start: s.start, end: s.end, label: s.labels.join(', ') }));
  }

  /** `text` with spans wrapped in <mark>; where kinds overlap, the piece is marked as both. */
  function highlightSpans(text, rawSpans) {
    const spans = unionByKind(rawSpans);
    const fragment = document.createDocumentFragment();
    const points = new Set([0, text.length]);
    for (const s of spans) { points.add(s.start); points.add(s.end); }
    const sorted = [...points].sort((a, b) => a - b);
    const pieces = [];
    for (let k = 0; k + 1 < sorted.length; k += 1) {
      const start = sorted[k];
      const end = sorted[k + 1];
      if (start === end) continue;
      const covering = spans.filter((s) => s.start <= start && s.end >= end);
      const key = covering.map((s) => s.id).join(',');
      const prev = pieces[pieces.length - 1];
      if (prev && prev.key === key) prev.end = end;
      else pieces.push({ start, end, key, covering });
    }
    for (const piece of pieces) {
      const slice = text.slice(piece.start, piece.end);
      if (!piece.covering.length) { fragment.append(slice); continue; }
      const kinds = new Set(piece.covering.map((s) => s.kind));
      const kind = kinds.size > 1 ? 'both' : [...kinds][0];
      const label = piece.covering.map((s) => s.label).join(', ');
      fragment.append(h('mark', { class: `mark-${kind}`, title: label }, slice));
    }
    return fragment;
  }

  function buildPlayground() {
    const textarea = h('textarea', {
      id: 'scan-text', class: 'input scan-input', rows: '6', spellcheck: 'false',
      placeholder: 'Paste a prompt to see what the guards make of it, e.g. "Ignore all previous instructions…"',
    });
    const scan = h('button', { type: 'submit', class: 'btn btn-primary' }, icon('shield'), 'Scan');
    const output = h('div', { class: 'scan-output', 'aria-live': 'polite' });
    const form = h('form', { class: 'scan-form', novalidate: true },
      h('div', { class: 'field' }, h('label', { for: 'scan-text' }, 'Text to scan'), textarea),
      h('div', { class: 'form-actions' }, scan, h('span', { class: 'hint' }, 'Ctrl+Enter to scan. Nothing is stored.')));
    const run = async () => {
      if (scan.disabled) return;
      const text = textarea.value;
      scan.disabled = true;
      output.setAttribute('aria-busy', 'true');
      try {
        const verdict = await api('/api/guard/scan/', { method: 'POST', body: { text } });
        output.replaceChildren(renderVerdict(text, verdict));
      } catch (err) {
        if (err.status !== 401) {
          output.replaceChildren(h('p', { class: 'notice notice-error', role: 'alert' }, icon('alert'), h('span', null, err.message)));
        }
      } finally {
        scan.disabled = false;
        output.removeAttribute('aria-busy');
      }
    };
    form.addEventListener('submit', (event) => { event.preventDefault(); run(); });
    textarea.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) { event.preventDefault(); run(); }
    });
    return h('div', { class: 'card playground' },
      h('div', { class: 'card-header' },
        h('div', null,
          h('h2', { class: 'card-title' }, 'Guard playground'),
          h('p', { class: 'card-subtitle' }, 'Run the input guards on a text: injection patterns, personal data and credentials.'))),
      h('div', { class: 'card-body' }, form, output));
  }

  function renderVerdict(text, verdict) {
    const toIndex = byteOffsetMapper(text);
    const injection = verdict.injection || {};
    const pii = verdict.pii || {};
    const patterns = Array.isArray(injection.patterns) ? injection.patterns : [];
    const detections = Array.isArray(pii.detections) ? pii.detections : [];
    const spans = [];
    patterns.forEach((p, i) => {
      // The learned classifier judges the whole text (no matched_text): not a span to mark.
      if (!p.matched_text) return;
      const start = toIndex(Number(p.start) || 0);
      const end = toIndex(Number(p.end) || 0);
      if (end > start) spans.push({ id: `i${i}`, start, end, kind: 'injection', label: `Injection: ${p.category}` });
    });
    detections.forEach((d, i) => {
      const start = toIndex(Number(d.start) || 0);
      const end = toIndex(Number(d.end) || 0);
      if (end > start) spans.push({ id: `p${i}`, start, end, kind: 'pii', label: `PII: ${d.display_name || d.entity_type}` });
    });

    const fmt = (n) => (typeof n === 'number' ? n.toFixed(2) : '–');
    const summary = h('dl', { class: 'scan-summary' },
      h('div', null, h('dt', null, 'Action'), h('dd', null, actionBadge(verdict.action))),
      h('div', null, h('dt', null, 'Severity'), h('dd', null, severityBadge(verdict.severity))),
      h('div', null, h('dt', null, 'Injection score'), h('dd', null, fmt(injection.score),
        injection.method ? h('span', { class: 'muted' }, ` (${injection.method})`) : null)),
      typeof injection.learned_probability === 'number'
        ? h('div', null, h('dt', null, 'Classifier'), h('dd', null, fmt(injection.learned_probability))) : null,
      h('div', null, h('dt', null, 'PII score'), h('dd', null, fmt(pii.score))));

    const parts = [summary];
    if (verdict.warning) parts.push(h('p', { class: 'guard-warning-preview' }, icon('shield'), h('span', null, verdict.warning)));

    parts.push(h('h3', { class: 'section-title' }, 'Matches in the text'),
      h('div', { class: 'legend', 'aria-hidden': 'true' },
        h('span', { class: 'legend-item' }, h('span', { class: 'swatch swatch-injection' }), 'Injection pattern'),
        h('span', { class: 'legend-item' }, h('span', { class: 'swatch swatch-pii' }), 'Personal data or credential')),
      h('div', { class: 'scan-text' }, text ? highlightSpans(text, spans) : h('span', { class: 'muted' }, '(empty)')));

    if (patterns.length) {
      parts.push(h('h3', { class: 'section-title' }, 'Injection patterns'),
        h('div', { class: 'table-scroll' }, h('table', { class: 'data-table compact' },
          h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Category'), h('th', { scope: 'col' }, 'Matched text'),
            h('th', { scope: 'col', class: 'cell-num' }, 'Weight'), h('th', { scope: 'col' }, 'Matched in'))),
          h('tbody', null, patterns.map((p) => h('tr', null,
            h('td', null, h('code', { class: 'tag' }, p.category)),
            h('td', { class: 'cell-text' }, p.matched_text || h('span', { class: 'muted' }, '(whole text)')),
            h('td', { class: 'cell-num' }, fmt(p.weight)), h('td', null, p.matched_in)))))));
    }
    if (detections.length) {
      parts.push(h('h3', { class: 'section-title' }, 'Personal data and credentials'),
        h('div', { class: 'table-scroll' }, h('table', { class: 'data-table compact' },
          h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Type'), h('th', { scope: 'col' }, 'Masked'),
            h('th', { scope: 'col', class: 'cell-num' }, 'Confidence'), h('th', { scope: 'col' }, 'Tier'))),
          h('tbody', null, detections.map((d) => h('tr', null,
            h('td', null, d.display_name || d.entity_type, h('code', { class: 'tag tag-quiet' }, d.entity_type)),
            h('td', { class: 'cell-text' }, d.masked), h('td', { class: 'cell-num' }, fmt(d.confidence)),
            h('td', null, actionBadge(d.action))))))));
    }
    if (!patterns.length && !detections.length) {
      parts.push(h('p', { class: 'muted' }, 'No injection patterns or personal data found.'));
    }
    parts.push(h('h3', { class: 'section-title' }, 'Redacted text'),
      h('pre', { class: 'redacted-text' }, verdict.redacted_text ?? ''));
    return h('div', { class: 'verdict' }, parts);
  }

  // -------------------------------------------------------------------------
  // 11. Boot
  // -------------------------------------------------------------------------

  async function startApp() {
    unauthorizedHandled = false;
    try {
      const me = await api('/api/users/me/');
      if (!me || !me.uuid) throw new ApiError(500, { detail: 'Unexpected answer from /api/users/me/.' });
      me.uuid = normalizeUuid(me.uuid);
      state.me = me;
    } catch (err) {
      if (err.status === 401) return; // the login page is already showing
      showFatal(err);
      return;
    }
    state.view = null;
    state.sidebar = { query: '', showArchived: false, threads: [], seq: 0, error: null, loaded: false };
    chat.threadUuid = null;
    chat.thread = null;
    chat.messages = [];
    chat.showHistory = false;
    chat.editing = null;
    moderation.severity = '';
    moderation.threads = [];
    moderation.selected = null;
    showShell();
    route();
  }

  function showFatal(err) {
    document.title = 'Palisade';
    appRoot.replaceChildren(h('div', { class: 'login-page' }, h('main', { class: 'login-main' },
      h('div', { class: 'login-card' },
        h('h1', { class: 'login-title' }, 'Palisade is unavailable'),
        h('p', { class: 'notice notice-error', role: 'alert' }, icon('alert'), h('span', null, err.message)),
        h('button', { type: 'button', class: 'btn btn-primary btn-block', onclick: () => startApp() }, 'Try again'),
        h('button', {
          type: 'button', class: 'btn btn-ghost btn-block',
          onclick: () => { tokenStore.clear(); showLogin(); },
        }, 'Log in again')))));
  }

  function boot() {
    appRoot = document.getElementById('app');
    if (!tokenStore.get()) {
      showLogin();
      return;
    }
    startApp();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
  else boot();
})();
