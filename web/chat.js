// Conversations in the model's chat template, from the per-message fragments the build derived and
// verified (compiler/chat.py, which renders the same way): no Jinja engine in the browser.

// Python's str.strip() whitespace (what the template's `trim` filter removes), not JS trim()'s.
const PY_WHITESPACE = "[\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";
const EDGES = new RegExp(`^${PY_WHITESPACE}+|${PY_WHITESPACE}+$`, "gu");

export function renderChat(chat, messages) {
  let text = chat.start[messages[0].role];
  messages.forEach((message, i) => {
    text += (chat.trim ? message.content.replace(EDGES, "") : message.content);
    text += i + 1 < messages.length ? chat.between[`${message.role}>${messages[i + 1].role}`] : chat.end;
  });
  return text;
}

export function checkMessages(chat, messages) {
  if (!Array.isArray(messages) || messages.length === 0) throw new Error("messages must be a non-empty list of {role, content}");
  messages.forEach((m, i) => {
    if (typeof m !== "object" || m === null || typeof m.role !== "string" || typeof m.content !== "string")
      throw new Error(`messages[${i}] must be {role: string, content: string}, got ${JSON.stringify(m)}`);
  });
  const roles = messages.map((m) => m.role);
  const unknown = roles.find((r) => !["system", "user", "assistant"].includes(r));
  if (unknown !== undefined) throw new Error(`unknown role ${JSON.stringify(unknown)}: the roles are system, user and assistant`);
  if (roles.includes("system") && !("system" in chat.start)) throw new Error("this model's chat template takes no system message");
  const inOrder = roles[0] in chat.start && roles.at(-1) === "user" && roles.slice(1).every((r, i) => `${roles[i]}>${r}` in chat.between);
  if (!inOrder) throw new Error("messages must be: an optional system message, then user and assistant in turn, ending with a user message");
}
