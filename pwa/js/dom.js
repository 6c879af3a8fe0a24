// Building the page. Text is only ever set as text (createTextNode / textContent); there is no way to
// pass markup through here, and the CSP's Trusted Types would refuse any HTML-parsing sink anyway.

// h('button.primary.big', {type: 'button', onclick}, 'text', childNode, [more], null)
//   tag[.class…]; props: on* → listeners, value/checked/disabled → properties, dataset → data-*,
//   everything else → attributes; children: nodes, strings (as text), arrays; null/false are skipped.
export function h(tag, props, ...children) {
  // A child in the props slot (h('p', 'text')) is a child, not attributes.
  if (props instanceof Node || typeof props !== 'object' || Array.isArray(props)) {
    children.unshift(props);
    props = null;
  }
  const [name, ...classes] = tag.split('.');
  const el = document.createElement(name || 'div');
  if (classes.length) el.className = classes.join(' ');
  for (const [key, value] of Object.entries(props || {})) {
    if (value == null || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'value' || key === 'checked' || key === 'disabled') el[key] = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'class') el.classList.add(...String(value).split(' ').filter(Boolean));
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

// Replace a node's children in place (a live region re-rendered from new data).
export function fill(el, ...children) {
  return append(clear(el), children);
}
