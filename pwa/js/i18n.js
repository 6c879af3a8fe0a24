// Strings and formats. Every word the app shows lives in strings/zh-CN.js or strings/en.js (one file per
// language, same keys); zh-CN is the default, English is a switch remembered on the phone.
import zh from './strings/zh-CN.js';
import en from './strings/en.js';
import { kvSet } from './idb.js';

const TABLES = { 'zh-CN': zh, en };
const KEY = 'gridrider.lang';
const listeners = new Set();
let lang = localStorage.getItem(KEY) === 'en' ? 'en' : 'zh-CN';

export const getLang = () => lang;

export function setLang(next) {
  lang = next === 'en' ? 'en' : 'zh-CN';
  localStorage.setItem(KEY, lang);
  kvSet('lang', lang).catch(() => {}); // the service worker words notifications in it
  document.documentElement.lang = lang;
  listeners.forEach((fn) => fn(lang));
}

export function onLangChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

// t('finish.saved', {before: '3 MB', after: '280 KB'}) → the current language's text, {names} filled in.
export function t(key, vars) {
  const text = TABLES[lang][key] ?? zh[key] ?? key;
  return vars ? text.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m)) : text;
}

// The name in the reader's language from an API object: pick(cat, 'name') → name_zh or name_en.
export function pick(obj, base) {
  if (!obj) return '';
  return (lang === 'en' && obj[`${base}_en`]) || obj[`${base}_zh`] || obj[`${base}_en`] || '';
}

// Times are always Shanghai time, whatever the phone's zone: "11月26日 14:05" / "Nov 26, 14:05".
const formats = {};
export function formatTime(value) {
  if (value == null) return '';
  formats[lang] ??= new Intl.DateTimeFormat(lang, {
    timeZone: 'Asia/Shanghai', month: lang === 'en' ? 'short' : 'long', day: 'numeric',
    hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
  });
  return formats[lang].format(new Date(value));
}

export const formatDistance = (m) => t('unit.m', { n: Math.round(m) });

export function formatBytes(n) {
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  return `${Math.max(1, Math.round(n / 1e3))} KB`;
}
