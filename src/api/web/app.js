// callwarden web page: plain JavaScript, no libraries, nothing fetched from elsewhere.
// Data only ever reaches the page as text (textContent / SVG text nodes), never as HTML.
'use strict';

const I18N = {
  en: {
    'tab.live': 'Live', 'tab.calls': 'Calls', 'tab.charts': 'Charts', 'tab.recordings': 'Recordings',
    'tab.register': 'Long-distance register', 'tab.approvals': 'Approvals', 'logout': 'Log out',
    'login.token': 'Access token', 'login.go': 'Log in', 'login.bad': 'Unknown token.',
    'live.calls': 'Calls in progress', 'live.violations': 'Violations as they happen', 'live.ended': 'Recently ended',
    'live.none': 'No calls in progress.', 'live.on': 'live: connected', 'live.off': 'not capturing (database view)',
    'central.ok': 'central store {site}: up, {n} rows waiting', 'central.down': 'central store unreachable: {n} rows waiting here (oldest {age}) — {error}',
    'central.refused': 'central store refuses this site: {error}',
    'live.lost': 'connection lost, retrying…', 'live.lagged': 'missed {n} events (too many at once)',
    'col.start': 'Start', 'col.caller': 'Caller', 'col.callee': 'Callee', 'col.direction': 'Direction',
    'col.state': 'State', 'col.violations': 'Violations', 'col.class': 'Class', 'col.rings': 'Rings',
    'col.talk': 'Talk (s)', 'col.end': 'End', 'col.endtime': 'End', 'col.group': 'Group', 'col.duration': 'Duration (s)',
    'col.status': 'Status', 'col.when': 'When', 'col.who': 'Who', 'col.recording': 'Recording', 'col.action': 'Action',
    'col.detail': 'Detail', 'col.cost': 'Cost (yuan)',
    'f.from': 'From', 'f.to': 'To', 'f.until': 'Until', 'f.ext': 'Extension', 'f.number': 'Number', 'f.class': 'Class',
    'f.direction': 'Direction', 'f.rule': 'Rule', 'f.group': 'Group', 'f.site': 'Site', 'f.allsites': 'all sites', 'f.month': 'Month', 'f.search': 'Search',
    'f.show': 'Show', 'csv': 'CSV', 'csv.zh': 'CSV (中文)', 'more': 'More',
    'calls.count': '{n} calls shown', 'detail.title': 'Call {id}', 'detail.ladder': 'SIP ladder',
    'detail.started': 'INVITE', 'detail.ringing': 'Ringing', 'detail.answered': 'Answered', 'detail.ended': 'Ended',
    'detail.ring_ms': 'Ringing (s)', 'detail.talk_ms': 'Talk (s)', 'detail.rings': 'Rings', 'detail.reason': 'End reason',
    'detail.status': 'SIP status', 'detail.cost': 'Cost (yuan)', 'detail.recording': 'Recording', 'detail.play': 'Play',
    'detail.media': 'Media', 'detail.none': 'none',
    'detail.answered_by': 'Answered by', 'detail.transferred_to': 'Transferred to', 'detail.wait': 'Waited in IVR/queue (s)',
    'detail.legs': 'Legs (SIP dialogs)', 'detail.link': 'linked by',
    'check.title': 'Would this call be allowed?', 'check.from': 'Extension', 'check.to': 'Number dialled',
    'check.go': 'Check', 'check.allowed': 'Allowed', 'check.denied': 'Not allowed', 'check.class': 'class',
    'check.group': 'group', 'check.fine': 'fine', 'check.pending': 'depends on the charge',
    'chart.rings': 'Rings before answer', 'chart.daily': 'Calls and violations per day',
    'chart.talk': 'Talk time per extension (mean and p90, s)', 'chart.calls': 'calls', 'chart.violations': 'violations',
    'chart.mean': 'mean', 'chart.p90': 'p90', 'chart.nodata': 'no data',
    'tot.calls': 'calls', 'tot.answered': 'answered', 'tot.violations': 'violations',
    'player.logged': 'Every playback is written to the playback log with your name.',
    'sample.title': 'Monthly spot check', 'sample.n': 'How many', 'sample.go': 'Draw',
    'sample.info': '{n} of {total} recordings drawn, seed {seed} (the same seed draws the same sample)',
    'rec.superseded': '{status}, superseded by {id}',
    'cb.title': 'Call-backs this month (STA-3)', 'cb.made': 'Calls made', 'cb.numbers': 'Numbers called',
    'cb.answered': 'Answered', 'cb.rate': 'Answered %', 'cb.effective': 'Effective', 'cb.min': 'Effective from (s)',
    'log.title': 'Playback log', 'reg.user': 'User', 'reg.matter': 'Matter', 'reg.outcome': 'Outcome',
    'appr.approver': 'Approver', 'appr.note': 'Note', 'appr.add': 'Add', 'appr.revoked': 'Revoked', 'appr.revoke': 'Revoke',
    'state.trying': 'calling', 'state.ringing': 'ringing', 'state.answered': 'talking',
    'play': 'Play',
  },
  zh: {
    'tab.live': '实时', 'tab.calls': '通话记录', 'tab.charts': '统计图表', 'tab.recordings': '录音',
    'tab.register': '长途电话登记', 'tab.approvals': '审批', 'logout': '退出',
    'login.token': '访问令牌', 'login.go': '登录', 'login.bad': '令牌无效。',
    'live.calls': '进行中的通话', 'live.violations': '实时违规', 'live.ended': '刚结束的通话',
    'live.none': '当前没有通话。', 'live.on': '实时：已连接', 'live.off': '未抓包（仅数据库）',
    'central.ok': '中心库 {site}：已连接，待上传 {n} 条', 'central.down': '中心库不可达：本地待上传 {n} 条（最早 {age}）— {error}',
    'central.refused': '中心库拒绝本站点：{error}',
    'live.lost': '连接中断，正在重试…', 'live.lagged': '漏收 {n} 条事件（瞬间过多）',
    'col.start': '开始时间', 'col.caller': '主叫', 'col.callee': '被叫', 'col.direction': '方向',
    'col.state': '状态', 'col.violations': '违规', 'col.class': '类别', 'col.rings': '响铃声数',
    'col.talk': '通话(秒)', 'col.end': '结束原因', 'col.endtime': '结束时间', 'col.group': '部门', 'col.duration': '时长(秒)',
    'col.status': '状态', 'col.when': '时间', 'col.who': '操作人', 'col.recording': '录音', 'col.action': '操作',
    'col.detail': '详情', 'col.cost': '费用(元)',
    'f.from': '开始日期', 'f.to': '结束日期', 'f.until': '截止日期', 'f.ext': '分机', 'f.number': '号码', 'f.class': '类别',
    'f.direction': '方向', 'f.rule': '规则', 'f.group': '部门', 'f.site': '站点', 'f.allsites': '全部站点', 'f.month': '月份', 'f.search': '查询',
    'f.show': '显示', 'csv': '导出CSV', 'csv.zh': '导出CSV(中文)', 'more': '更多',
    'calls.count': '显示 {n} 条通话', 'detail.title': '通话 {id}', 'detail.ladder': 'SIP 信令图',
    'detail.started': '呼叫', 'detail.ringing': '振铃', 'detail.answered': '接通', 'detail.ended': '挂断',
    'detail.ring_ms': '振铃(秒)', 'detail.talk_ms': '通话(秒)', 'detail.rings': '响铃声数', 'detail.reason': '结束原因',
    'detail.status': 'SIP 状态', 'detail.cost': '费用(元)', 'detail.recording': '录音', 'detail.play': '播放',
    'detail.media': '媒体', 'detail.none': '无',
    'detail.answered_by': '接听分机', 'detail.transferred_to': '转接至', 'detail.wait': 'IVR/排队等待(秒)',
    'detail.legs': '呼叫段 (SIP 对话)', 'detail.link': '关联依据',
    'check.title': '这个电话可以打吗？', 'check.from': '分机', 'check.to': '拨打号码',
    'check.go': '检查', 'check.allowed': '允许', 'check.denied': '不允许', 'check.class': '类别',
    'check.group': '部门', 'check.fine': '罚款', 'check.pending': '取决于话费',
    'chart.rings': '接听前响铃声数', 'chart.daily': '每日通话与违规',
    'chart.talk': '各分机通话时长（平均与90分位，秒）', 'chart.calls': '通话', 'chart.violations': '违规',
    'chart.mean': '平均', 'chart.p90': '90分位', 'chart.nodata': '无数据',
    'tot.calls': '通话', 'tot.answered': '已接听', 'tot.violations': '违规',
    'player.logged': '每次播放都会以您的名义记入播放日志。',
    'sample.title': '每月抽查', 'sample.n': '数量', 'sample.go': '抽取',
    'sample.info': '从 {total} 条录音中抽取 {n} 条，种子 {seed}（同一种子抽取结果相同）',
    'rec.superseded': '{status}，已由 {id} 取代',
    'cb.title': '本月回访统计（STA-3）', 'cb.made': '拨出次数', 'cb.numbers': '回访号码数',
    'cb.answered': '接通次数', 'cb.rate': '接通率', 'cb.effective': '有效通话', 'cb.min': '有效通话标准(秒)',
    'log.title': '播放日志', 'reg.user': '使用人', 'reg.matter': '事由', 'reg.outcome': '结果',
    'appr.approver': '批准人', 'appr.note': '备注', 'appr.add': '添加', 'appr.revoked': '已撤销', 'appr.revoke': '撤销',
    'state.trying': '呼叫中', 'state.ringing': '振铃中', 'state.answered': '通话中',
    'play': '播放',
  },
};

const CLASSES = ['internal', 'emergency', 'premium', 'toll-free', 'hk-macau', 'taiwan', 'international', 'mobile', 'long-distance', 'local', 'sip-uri'];
const ROLES = { supervisor: 1, auditor: 2, admin: 3 };

let lang = localStorage.getItem('cw-lang') || ((navigator.language || '').startsWith('zh') ? 'zh' : 'en');
let me = null;
let events = null;
let callsNext = null;
// Set when the API shows several sites (the central store): filters and the calls table
// then name the site.
let multiSite = false;
const loaded = {};

function t(key, vars) {
  let s = (I18N[lang] && I18N[lang][key]) || I18N.en[key] || key;
  if (vars) for (const k of Object.keys(vars)) s = s.replace('{' + k + '}', String(vars[k]));
  return s;
}

function $(sel) { return document.querySelector(sel); }

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function applyLang() {
  document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
  for (const e of document.querySelectorAll('[data-i18n]')) e.textContent = t(e.dataset.i18n);
  $('#lang').value = lang;
}

// Times come as RFC 3339 with the site's offset: show the site's wall-clock time as is.
function hhmm(s) { return s ? s.slice(0, 19).replace('T', ' ') : '–'; }
function secs(ms) { return ms === null || ms === undefined ? '–' : (ms / 1000).toFixed(1); }
function yuan(fen) { return fen === null || fen === undefined ? '–' : (fen / 100).toFixed(2); }

class HttpError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, opts) {
  const o = Object.assign({ credentials: 'same-origin', headers: {} }, opts || {});
  if (o.method && o.method !== 'GET') o.headers['X-Requested-With'] = 'callwarden';
  const res = await fetch(path, o);
  if (res.status === 401) { showLogin(); throw new HttpError(401, 'login needed'); }
  if (!res.ok) {
    let msg = res.statusText;
    try { msg = (await res.json()).error || msg; } catch (_) { /* not JSON */ }
    throw new HttpError(res.status, msg);
  }
  if (res.status === 204) return null;
  return res.json();
}

function query(form) {
  const p = new URLSearchParams();
  for (const [k, v] of new FormData(form)) if (String(v).trim() !== '') p.set(k, String(v).trim());
  return p;
}

function report(e) {
  if (e instanceof HttpError && e.status === 401) return;
  // Shown to the person, and logged as a warning (a failed request is not a page error).
  console.warn('callwarden:', e.message);
  const bar = $('#login-error');
  if (bar) bar.textContent = e.message;
}

// ---- login -------------------------------------------------------------------------
function showLogin() {
  $('#login').hidden = false;
  $('#app').hidden = true;
  if (events) { events.close(); events = null; }
}

async function start() {
  try {
    me = await api('/api/whoami');
  } catch (e) {
    if (!(e instanceof HttpError && e.status === 401)) report(e);
    return;
  }
  if (!me || !me.name) { showLogin(); return; }
  $('#login').hidden = true;
  $('#app').hidden = false;
  // Local mode (no tokens configured): nobody logged in, so nothing to log out of.
  $('#logout').hidden = !me.login;
  $('#who').textContent = me.name + ' (' + me.role + ')';
  for (const b of document.querySelectorAll('[data-role]')) b.hidden = ROLES[me.role] < ROLES[b.dataset.role];
  await addSiteSelectors();
  const first = (location.hash || '#live').slice(1);
  showTab(document.querySelector('[data-tab="' + first + '"]:not([hidden])') ? first : 'live');
  connectEvents();
  centralStatus();
  if (!centralTimer) centralTimer = setInterval(centralStatus, 5000);
}

// ---- sites -------------------------------------------------------------------------
// Over the central store of several sites, every filter gets a site choice ("" = all
// sites); a single site's page has none.
async function addSiteSelectors() {
  let sites = [];
  try { sites = (await api('/api/sites')).sites || []; } catch (e) { return; }
  if (sites.length < 2) return;
  multiSite = true;
  for (const th of document.querySelectorAll('th.site-col')) th.hidden = false;
  for (const id of ['#calls-filter', '#charts-filter', '#rec-filter', '#register-filter']) {
    const form = $(id);
    if (!form || form.querySelector('select[name=site]')) continue;
    const sel = el('select', { name: 'site', class: 'site-select' }, el('option', { value: '', 'data-i18n': 'f.allsites' }, t('f.allsites')));
    for (const s of sites) sel.append(el('option', { value: s }, s));
    form.prepend(el('label', null, el('span', { 'data-i18n': 'f.site' }, t('f.site')), ' ', sel));
  }
}

// ---- tabs --------------------------------------------------------------------------
function showTab(name) {
  for (const b of document.querySelectorAll('#tabs button')) b.classList.toggle('active', b.dataset.tab === name);
  for (const s of document.querySelectorAll('.tab')) s.hidden = s.id !== 'tab-' + name;
  if (location.hash !== '#' + name) history.replaceState(null, '', '#' + name);
  if (!loaded[name]) {
    loaded[name] = true;
    const init = { live: loadLive, calls: () => loadCalls(false), charts: loadCharts, recordings: loadRecordings,
      register: loadRegister, approvals: loadApprovals }[name];
    if (init) init().catch(report);
  }
}

// ---- live --------------------------------------------------------------------------
const live = new Map();

function renderLive() {
  const body = $('#live-calls tbody');
  body.replaceChildren();
  const calls = [...live.values()].sort((a, b) => (a.started_at < b.started_at ? -1 : 1));
  for (const c of calls) {
    const v = (c.violations || []).map((x) => x.rule + ' ' + x.kind).join(', ');
    body.append(el('tr', { 'data-call': c.call_id },
      el('td', null, hhmm(c.started_at)), el('td', null, c.caller), el('td', null, c.dialled || c.callee),
      el('td', null, c.direction), el('td', null, t('state.' + c.state)), el('td', { class: v ? 'bad' : '' }, v)));
  }
  $('#live-empty').hidden = calls.length > 0;
}

async function loadLive() {
  const doc = await api('/api/live');
  live.clear();
  for (const c of doc.calls) live.set(c.call_id, c);
  renderLive();
}

function feed(list, item, max) {
  item.classList.add('fresh');
  list.prepend(item);
  while (list.children.length > max) list.lastChild.remove();
}

function liveStatus(cls, text) {
  const s = $('#live-status');
  s.className = 'pill ' + cls;
  s.textContent = text;
}

// The forwarder's state (a site with [store] central): shown beside the live status, so
// a supervisor sees when this site's rows have not reached the central store yet.
let centralTimer = null;
async function centralStatus() {
  const s = $('#central-status');
  let d;
  try { d = await api('/api/central'); } catch (e) { return; }
  if (!d || !d.configured) { s.hidden = true; return; }
  const age = d.oldest_age_s >= 60 ? Math.round(d.oldest_age_s / 60) + ' min' : Math.round(d.oldest_age_s) + ' s';
  const vars = { site: d.site, n: d.backlog_rows, age, error: d.last_error };
  s.hidden = false;
  s.className = 'pill ' + (d.up ? 'on' : 'off');
  s.textContent = t(d.refused ? 'central.refused' : d.up ? 'central.ok' : 'central.down', vars);
}

function connectEvents() {
  if (events) events.close();
  events = new EventSource('/api/events');
  events.addEventListener('hello', (e) => {
    const d = JSON.parse(e.data);
    liveStatus(d.live ? 'on' : 'off', t(d.live ? 'live.on' : 'live.off'));
  });
  events.addEventListener('call-started', (e) => {
    const c = JSON.parse(e.data);
    live.set(c.call_id, c);
    renderLive();
  });
  for (const [name, state, field] of [['call-ringing', 'ringing', 'ringing_at'], ['call-answered', 'answered', 'answered_at']]) {
    events.addEventListener(name, (e) => {
      const d = JSON.parse(e.data);
      const c = live.get(d.call_id);
      if (c) { if (c.state !== 'answered') c.state = state; c[field] = d.at; renderLive(); }
    });
  }
  events.addEventListener('call-ended', (e) => {
    const d = JSON.parse(e.data);
    live.delete(d.call_id);
    renderLive();
    feed($('#live-ended'), el('li', null, hhmm(d.ended_at) + '  ' + d.caller + ' → ' + (d.number || d.callee) + '  ' +
      d.end_reason + (d.answered ? '  ' + secs(d.talk_ms) + ' s' : '')), 20);
  });
  events.addEventListener('violation', (e) => {
    const v = JSON.parse(e.data);
    const c = v.call_id && live.get(v.call_id);
    if (c) {
      c.violations = c.violations || [];
      if (!c.violations.some((x) => x.rule === v.rule)) c.violations.push({ rule: v.rule, kind: v.kind });
      renderLive();
    }
    const fine = v.fine_fen === null ? t('check.pending') : yuan(v.fine_fen);
    feed($('#live-violations'), el('li', { class: 'violation', 'data-rule': v.rule },
      el('strong', null, v.rule + ' ' + v.kind), '  ' + hhmm(v.detected_at) + '  ' + t('f.ext') + ' ' + v.extension +
      '  ' + v.number + '  ' + t('check.fine') + ' ' + fine, el('br'), el('span', { class: 'muted' }, v.detail)), 50);
  });
  events.addEventListener('lagged', (e) => {
    liveStatus('off', t('live.lagged', { n: JSON.parse(e.data).missed }));
    loadLive().catch(report);
  });
  events.onerror = () => {
    liveStatus('off', t('live.lost'));
    // EventSource reconnects by itself; the calls list is fetched again when it does.
    events.addEventListener('open', () => loadLive().catch(report), { once: true });
  };
}

// ---- calls -------------------------------------------------------------------------
function callsQuery() {
  return query($('#calls-filter'));
}

async function loadCalls(more) {
  const p = callsQuery();
  p.set('limit', '100');
  if (more && callsNext) p.set('after', callsNext);
  const page = await api('/api/calls?' + p);
  const body = $('#calls-table tbody');
  if (!more) body.replaceChildren();
  for (const c of page.calls) {
    const v = c.violations.map((x) => x.rule + ' ' + x.kind).join(', ');
    body.append(el('tr', { class: 'clickable', 'data-call': c.call_id, onclick: () => showCall(c.call_id, c.site) },
      el('td', null, hhmm(c.started_at)), el('td', null, c.caller), el('td', null, c.dialled || c.callee),
      el('td', null, c.direction), el('td', null, c.class || '–'), el('td', null, c.rings),
      el('td', null, c.answered ? secs(c.talk_ms) : '–'), el('td', null, c.end_reason), el('td', { class: v ? 'bad' : '' }, v),
      multiSite ? el('td', { class: 'site-col' }, c.site || '–') : null));
  }
  callsNext = page.next;
  $('#calls-more').hidden = !page.next;
  $('#calls-count').textContent = t('calls.count', { n: body.children.length });
  const csv = callsQuery();
  csv.set('format', 'csv');
  csv.set('bom', '1');
  $('#calls-csv').href = '/api/calls?' + csv;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

// An <svg> of this class and size, and `mk(tag, attrs, text)` that appends an element to it.
function svgDrawing(cls, width, height) {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('class', cls);
  svg.setAttribute('width', width);
  svg.setAttribute('height', height);
  const mk = (tag, attrs, text) => {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    svg.append(e);
    return e;
  };
  return { svg, mk };
}

function ladder(steps) {
  const hosts = [];
  for (const s of steps) for (const h of [s.src, s.dst]) if (!hosts.includes(h)) hosts.push(h);
  const colW = 220, rowH = 26, top = 40, left = 90;
  const w = left + Math.max(1, hosts.length) * colW, h = top + steps.length * rowH + 20;
  const { svg, mk } = svgDrawing('ladder', w, h);
  const defs = document.createElementNS(SVG_NS, 'defs');
  const marker = document.createElementNS(SVG_NS, 'marker');
  for (const [k, v] of Object.entries({ id: 'arrow', markerWidth: 8, markerHeight: 8, refX: 8, refY: 4, orient: 'auto' })) marker.setAttribute(k, v);
  const path = document.createElementNS(SVG_NS, 'path');
  path.setAttribute('d', 'M0,0 L8,4 L0,8 z');
  marker.append(path);
  defs.append(marker);
  svg.append(defs);
  hosts.forEach((hst, i) => {
    const x = left + i * colW + colW / 2;
    mk('text', { x, y: 16, 'text-anchor': 'middle' }, hst);
    mk('line', { x1: x, y1: 24, x2: x, y2: h - 10, stroke: '#9aa4b2' });
  });
  steps.forEach((s, i) => {
    const y = top + i * rowH + 10;
    const x1 = left + hosts.indexOf(s.src) * colW + colW / 2;
    const x2 = left + hosts.indexOf(s.dst) * colW + colW / 2;
    const g = mk('g', { class: s.duplicate ? 'dup' : '' });
    const line = document.createElementNS(SVG_NS, 'line');
    for (const [k, v] of Object.entries({ x1, y1: y, x2, y2: y, stroke: '#1f5fbf', 'marker-end': 'url(#arrow)' })) line.setAttribute(k, v);
    g.append(line);
    const label = document.createElementNS(SVG_NS, 'text');
    label.setAttribute('x', (x1 + x2) / 2);
    label.setAttribute('y', y - 4);
    label.setAttribute('text-anchor', 'middle');
    label.textContent = s.label;
    g.append(label);
    const time = document.createElementNS(SVG_NS, 'text');
    time.setAttribute('x', 4);
    time.setAttribute('y', y + 4);
    time.textContent = '+' + ((s.at - steps[0].at) / 1e6).toFixed(3) + ' s';
    g.append(time);
  });
  return svg;
}

// The call's legs on one time axis: a bar per SIP dialog from its INVITE to its end, the
// answered part darker, labelled with its role, parties and final status.
function legsTimeline(legs) {
  const ms = (x) => (x ? Date.parse(x) : NaN);
  const t0 = Math.min(...legs.map((l) => ms(l.started_at)));
  const t1 = Math.max(...legs.map((l) => ms(l.ended_at)), t0 + 1);
  const left = 330, width = 520, rowH = 24, top = 8;
  const x = (v) => left + ((v - t0) / (t1 - t0)) * width;
  const { svg, mk } = svgDrawing('legs', left + width + 70, top + legs.length * rowH + 18);
  legs.forEach((l, i) => {
    const y = top + i * rowH;
    mk('text', { x: 0, y: y + 14 }, l.role + '  ' + l.from + ' → ' + l.to + '  (' + (l.sip_status === null ? '–' : l.sip_status) + ')');
    const a = ms(l.started_at), e = ms(l.ended_at), ans = ms(l.answered_at);
    mk('rect', { x: x(a), y: y + 4, width: Math.max(2, x(e) - x(a)), height: 12, class: 'leg-ring' });
    if (!Number.isNaN(ans)) mk('rect', { x: x(ans), y: y + 4, width: Math.max(2, x(e) - x(ans)), height: 12, class: 'leg-talk' });
  });
  mk('text', { x: left, y: top + legs.length * rowH + 14 }, '0 s');
  mk('text', { x: left + width, y: top + legs.length * rowH + 14, 'text-anchor': 'end' }, ((t1 - t0) / 1000).toFixed(1) + ' s');
  return svg;
}

async function showCall(id, site) {
  for (const r of document.querySelectorAll('#calls-table tbody tr')) r.classList.toggle('selected', r.dataset.call === id);
  // A Call-ID is unique within its site: over several sites the row's site says which.
  const c = await api('/api/calls/' + encodeURIComponent(id) + (site ? '?site=' + encodeURIComponent(site) : ''));
  const box = $('#call-detail');
  box.hidden = false;
  const dl = el('dl', { class: 'timings' });
  const add = (k, v) => dl.append(el('dt', null, t(k)), el('dd', null, v));
  add('col.caller', c.caller + (c.caller_display ? ' (' + c.caller_display + ')' : ''));
  add('col.callee', c.callee + (c.dialled && c.dialled !== c.callee ? ' / ' + c.dialled : '') + (c.number ? ' → ' + c.number : ''));
  add('col.class', (c.class || '–') + (c.group ? '  ·  ' + c.group : ''));
  add('detail.started', hhmm(c.started_at));
  add('detail.ringing', hhmm(c.ringing_at));
  add('detail.answered', hhmm(c.answered_at));
  add('detail.ended', hhmm(c.ended_at));
  add('detail.rings', c.rings);
  add('detail.ring_ms', c.ringing_at ? secs(c.ring_ms) : '–');
  add('detail.talk_ms', c.answered ? secs(c.talk_ms) : '–');
  add('detail.reason', c.end_reason);
  add('detail.status', c.sip_status === null ? '–' : c.sip_status);
  add('detail.cost', yuan(c.cost_fen));
  const media = [c.media_caller, c.media_callee].map((m) => (m && m.packets ? (m.codecs || []).join('/') + ' ' + m.packets + ' pkts, ' + m.lost + ' lost' : t('detail.none'))).join('  |  ');
  add('detail.media', media);
  if (c.answered_by) add('detail.answered_by', c.answered_by);
  if (c.transferred_to) add('detail.transferred_to', c.transferred_to);
  if (c.wait_ms) add('detail.wait', secs(c.wait_ms));
  const legs = c.legs || [];
  const legsBox = legs.length > 1
    ? [el('h2', null, t('detail.legs') + (c.link ? '  ·  ' + t('detail.link') + ' ' + c.link : '')), el('div', { class: 'scroll', id: 'call-legs' }, legsTimeline(legs))]
    : [];
  const viol = el('ul');
  for (const v of c.violation_details || []) viol.append(el('li', { class: 'bad' }, v.rule + ' ' + v.kind + '  ' + t('check.fine') + ' ' + (v.fine_fen === null ? t('check.pending') : yuan(v.fine_fen)) + '  ' + v.detail));
  const rec = c.recording && ROLES[me.role] >= ROLES.auditor
    ? el('p', null, el('button', { onclick: () => { showTab('recordings'); play(c.recording, c.caller + ' → ' + c.callee); } }, t('detail.play')))
    : null;
  // replaceChildren would show a null as the text "null".
  box.replaceChildren(...[el('h2', null, t('detail.title', { id: c.call_id })), dl, viol, rec, ...legsBox,
    el('h2', null, t('detail.ladder')), el('div', { class: 'scroll' }, ladder(c.ladder || []))].filter(Boolean));
}

async function check(ev) {
  ev.preventDefault();
  const p = query(ev.target);
  const box = $('#check-result');
  try {
    const r = await api('/api/policy/check?' + p);
    const head = el('p', null, el('span', { class: r.allowed ? 'ok' : 'bad' }, t(r.allowed ? 'check.allowed' : 'check.denied')),
      '  ' + r.number + '  ·  ' + t('check.class') + ' ' + r.class + (r.group ? '  ·  ' + t('check.group') + ' ' + r.group : ''));
    const ul = el('ul');
    for (const v of r.violations) ul.append(el('li', null, v.rule + ' ' + v.kind + '  ' + t('check.fine') + ' ' + (v.fine_fen === null ? t('check.pending') : yuan(v.fine_fen)) + '  ' + v.detail));
    box.replaceChildren(head, ul);
  } catch (e) {
    box.replaceChildren(el('p', { class: 'error' }, e.message));
  }
}

// ---- charts ------------------------------------------------------------------------
function canvasCtx(id) {
  const c = document.getElementById(id);
  const ratio = window.devicePixelRatio || 1;
  const w = Number(c.getAttribute('width')), h = Number(c.getAttribute('height'));
  c.width = w * ratio;
  c.height = h * ratio;
  c.style.width = w + 'px';
  c.style.height = h + 'px';
  const g = c.getContext('2d');
  g.scale(ratio, ratio);
  g.clearRect(0, 0, w, h);
  g.font = '11px system-ui, sans-serif';
  return { g, w, h };
}

// Vertical bars: labels along x, one or more series.
function bars(id, labels, series, colors, legend) {
  const { g, w, h } = canvasCtx(id);
  // Counts: a multiple of 4 keeps the 4 grid lines on whole numbers.
  const max = Math.ceil(Math.max(1, ...series.flat()) / 4) * 4;
  const pad = { l: 36, r: 8, t: 18, b: 30 };
  const cw = (w - pad.l - pad.r) / Math.max(1, labels.length);
  if (!labels.length) { g.fillStyle = '#6b7280'; g.fillText(t('chart.nodata'), w / 2 - 20, h / 2); return; }
  g.strokeStyle = '#d8dde5';
  g.fillStyle = '#6b7280';
  for (let i = 0; i <= 4; i++) {
    const y = pad.t + (h - pad.t - pad.b) * (1 - i / 4);
    g.beginPath(); g.moveTo(pad.l, y); g.lineTo(w - pad.r, y); g.stroke();
    g.fillText(String(Math.round((max * i) / 4)), 4, y + 4);
  }
  const bw = (cw * 0.8) / series.length;
  series.forEach((s, k) => {
    g.fillStyle = colors[k];
    s.forEach((v, i) => {
      const bh = ((h - pad.t - pad.b) * v) / max;
      g.fillRect(pad.l + i * cw + cw * 0.1 + k * bw, h - pad.b - bh, bw - 1, bh);
    });
  });
  g.fillStyle = '#1d2430';
  const every = Math.ceil(labels.length / Math.max(1, Math.floor((w - pad.l) / 48)));
  labels.forEach((l, i) => { if (i % every === 0) g.fillText(l, pad.l + i * cw + 2, h - pad.b + 14); });
  legend.forEach((name, k) => { g.fillStyle = colors[k]; g.fillRect(pad.l + k * 90, 2, 10, 10); g.fillStyle = '#1d2430'; g.fillText(name, pad.l + k * 90 + 14, 11); });
}

// Horizontal bars: one row per label.
function hbars(id, labels, series, colors, legend) {
  const { g, w, h } = canvasCtx(id);
  // The legend, drawn on the canvas, also named for screen readers (and tests).
  document.getElementById(id)?.setAttribute('aria-label', legend.join(', '));
  if (!labels.length) { g.fillStyle = '#6b7280'; g.fillText(t('chart.nodata'), w / 2 - 20, h / 2); return; }
  const pad = { l: 70, r: 40, t: 18, b: 4 };
  const rows = labels.slice(0, Math.floor((h - pad.t - pad.b) / 14));
  const rh = (h - pad.t - pad.b) / rows.length;
  const max = Math.max(1, ...series.flat());
  rows.forEach((l, i) => {
    g.fillStyle = '#1d2430';
    g.fillText(l, 4, pad.t + i * rh + rh / 2 + 4);
    series.forEach((s, k) => {
      const v = s[i] || 0;
      g.fillStyle = colors[k];
      const bh = (rh * 0.8) / series.length;
      g.fillRect(pad.l, pad.t + i * rh + rh * 0.1 + k * bh, ((w - pad.l - pad.r) * v) / max, bh - 1);
    });
    g.fillStyle = '#6b7280';
    g.fillText(String((series[0][i] || 0).toFixed(0)), w - pad.r + 4, pad.t + i * rh + rh / 2 + 4);
  });
  legend.forEach((name, k) => { g.fillStyle = colors[k]; g.fillRect(pad.l + k * 90, 2, 10, 10); g.fillStyle = '#1d2430'; g.fillText(name, pad.l + k * 90 + 14, 11); });
}

async function loadCharts() {
  const p = query($('#charts-filter'));
  const withBy = (by) => { const q = new URLSearchParams(p); q.set('by', by); return q; };
  const [daily, exts] = await Promise.all([api('/api/stats?' + withBy('day')), api('/api/stats?' + withBy('ext'))]);
  const hist = [0, 0, 0, 0, 0, 0];
  for (const r of daily.rows) ['0', '1', '2', '3', '4', '5+'].forEach((k, i) => { hist[i] += r.rings_before_answer[k]; });
  bars('chart-rings', ['0', '1', '2', '3', '4', '5+'], [hist], ['#1f5fbf'], [t('chart.calls')]);
  const sum = (o) => Object.values(o || {}).reduce((a, b) => a + b, 0);
  bars('chart-daily', daily.rows.map((r) => (r.key || '').slice(5)), [daily.rows.map((r) => r.calls), daily.rows.map((r) => sum(r.violations))],
    ['#1f5fbf', '#b42318'], [t('chart.calls'), t('chart.violations')]);
  // The figures the charts draw, as numbers: over the period (and site) chosen.
  const tot = { calls: 0, answered: 0, violations: 0 };
  for (const r of daily.rows) { tot.calls += r.calls; tot.answered += r.answered; tot.violations += sum(r.violations); }
  $('#charts-totals').replaceChildren(...['calls', 'answered', 'violations'].flatMap((k, i) => [
    i ? ' · ' : '', el('span', { 'data-figure': k }, String(tot[k])), ' ' + t('tot.' + k)]));
  const ex = exts.rows.filter((r) => r.answered > 0).sort((a, b) => (b.talk_ms.mean || 0) - (a.talk_ms.mean || 0));
  hbars('chart-talk', ex.map((r) => r.key || '–'), [ex.map((r) => (r.talk_ms.mean || 0) / 1000), ex.map((r) => (r.talk_ms.p90 || 0) / 1000)],
    // ≈: p90 estimated from the central store's talk histograms (talk_ms.estimated).
    ['#1f5fbf', '#8fb3e8'], [t('chart.mean'), (ex.some((r) => r.talk_ms.estimated) ? '≈ ' : '') + t('chart.p90')]);
  const csv = withBy('ext');
  csv.set('format', 'csv');
  csv.set('bom', '1');
  $('#stats-csv').href = '/api/stats?' + csv;
}

// ---- recordings --------------------------------------------------------------------
let peaks = null;

function drawWave(progress) {
  const { g, w, h } = canvasCtx('waveform');
  g.fillStyle = '#10151d';
  g.fillRect(0, 0, w, h);
  if (!peaks) return;
  const chans = peaks.peaks.length;
  const band = h / chans;
  peaks.peaks.forEach((ch, k) => {
    const mid = band * k + band / 2;
    ch.forEach(([lo, hi], i) => {
      const x = (i / ch.length) * w;
      g.fillStyle = i / ch.length <= progress ? '#7fb2ff' : '#4a5a70';
      g.fillRect(x, mid - (hi * band) / 2, Math.max(1, w / ch.length - 0.5), Math.max(1, ((hi - lo) * band) / 2));
    });
  });
}

async function play(id, title) {
  $('#player').hidden = false;
  $('#player-title').textContent = title || id;
  const a = $('#audio');
  const url = '/api/recordings/' + encodeURIComponent(id) + '/audio';
  const err = $('#player-error');
  err.hidden = true;
  // The audio element does not say why it failed: ask the API once for its one line
  // (e.g. on the central page, the site that holds the recording cannot be reached).
  a.onerror = async () => {
    try { await api(url); } catch (e) { err.textContent = e.message; err.hidden = false; }
  };
  a.src = url;
  peaks = null;
  drawWave(0);
  try {
    const w = $('#waveform');
    peaks = await api('/api/recordings/' + encodeURIComponent(id) + '/peaks?n=' + Math.max(100, Math.round(w.clientWidth || 800)));
    drawWave(0);
  } catch (e) { report(e); }
  try { await a.play(); } catch (e) { console.warn('callwarden: playback did not start:', e.message); }
  loadLog().catch(report);
}

function recRow(r) {
  return el('tr', { 'data-recording': r.id },
    el('td', null, hhmm(r.call_started_at)), el('td', null, r.caller), el('td', null, r.dialled || r.callee),
    el('td', null, r.group || '–'), el('td', null, secs(r.duration_ms)),
    el('td', null, r.superseded_by ? t('rec.superseded', { status: r.status, id: r.superseded_by }) : r.status),
    el('td', null, el('button', { class: 'play', onclick: () => play(r.id, r.caller + ' → ' + (r.dialled || r.callee) + '  ' + hhmm(r.call_started_at)) }, t('play'))));
}

async function loadRecordings() {
  const p = query($('#rec-filter'));
  const page = await api('/api/recordings?' + p);
  $('#rec-table tbody').replaceChildren(...page.recordings.map(recRow));
  await loadLog();
}

async function loadLog() {
  // The log of the site chosen above the recordings (all sites' when none is).
  const site = query($('#rec-filter')).get('site');
  const doc = await api('/api/playback-log?limit=50' + (site ? '&site=' + encodeURIComponent(site) : ''));
  $('#log-table tbody').replaceChildren(...doc.rows.map((r) => el('tr', null,
    el('td', null, hhmm(r.at)), el('td', null, r.who), el('td', null, r.recording_id), el('td', null, r.action), el('td', null, r.detail))));
}

async function drawSample(ev) {
  ev.preventDefault();
  const doc = await api('/api/recordings/sample?' + query(ev.target));
  $('#sample-info').textContent = t('sample.info', { n: doc.recordings.length, total: doc.total, seed: doc.seed });
  $('#sample-list').replaceChildren(...doc.recordings.map((r) => el('li', null, hhmm(r.call_started_at) + '  ' + r.caller + ' → ' + (r.dialled || r.callee) + '  ',
    el('button', { onclick: () => play(r.id, r.caller + ' → ' + r.callee) }, t('play')))));
  await loadLog();
}

// ---- register ----------------------------------------------------------------------
async function loadRegister() {
  const form = $('#register-filter');
  if (!form.month.value) form.month.value = new Date().toISOString().slice(0, 7);
  const p = query(form);
  const cbq = new URLSearchParams();
  for (const k of ['month', 'site']) if (p.get(k)) cbq.set(k, p.get(k));
  const [doc, cb] = await Promise.all([api('/api/register?' + p), api('/api/callbacks?' + cbq)]);
  const rate = (x) => (x === null ? '–' : (x * 100).toFixed(1) + '%');
  $('#callbacks-table tbody').replaceChildren(...cb.groups.map((g) => el('tr', null,
    el('td', null, g.group), el('td', null, String(g.made)), el('td', null, String(g.numbers)), el('td', null, String(g.answered)),
    el('td', null, rate(g.answered_rate)), el('td', null, String(g.effective)), el('td', null, String(g.effective_min_talk_s)))));
  $('#register-table tbody').replaceChildren(...doc.rows.map((r) => el('tr', null,
    el('td', null, r.user), el('td', null, r.callee), el('td', null, hhmm(r.start)), el('td', null, hhmm(r.end)),
    el('td', null, secs(r.talk_ms)), el('td', null, r.class), el('td', null, yuan(r.cost_fen)), el('td', null, ''), el('td', null, ''))));
  for (const [id, zh] of [['#register-csv', false], ['#register-csv-zh', true]]) {
    const q = new URLSearchParams(p);
    q.set('format', 'csv');
    q.set('bom', '1');
    if (zh) q.set('lang', 'zh');
    $(id).href = '/api/register?' + q;
  }
}

// ---- approvals ---------------------------------------------------------------------
async function loadApprovals() {
  const rows = await api('/api/approvals');
  $('#approvals-table tbody').replaceChildren(...rows.map((a) => el('tr', null,
    el('td', null, a.id), el('td', null, a.extension), el('td', null, a.class), el('td', null, a.from), el('td', null, a.until),
    el('td', null, a.approver), el('td', null, a.note), el('td', null, a.revoked_at ? hhmm(a.revoked_at) : ''),
    el('td', null, a.revoked_at ? null : el('button', { onclick: () => revoke(a.id) }, t('appr.revoke'))))));
}

async function revoke(id) {
  await api('/api/approvals/' + id + '/revoke', { method: 'POST' }).catch(report);
  await loadApprovals().catch(report);
}

async function addApproval(ev) {
  ev.preventDefault();
  const body = Object.fromEntries(new FormData(ev.target));
  try {
    await api('/api/approvals', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    $('#approval-error').textContent = '';
    ev.target.reset();
    await loadApprovals();
  } catch (e) {
    $('#approval-error').textContent = e.message;
  }
}

// ---- wiring ------------------------------------------------------------------------
document.addEventListener('DOMContentLoaded', () => {
  for (const sel of ['#calls-filter select[name=class]', '#approval-form select[name=class]']) {
    for (const c of CLASSES) $(sel).append(el('option', { value: c }, c));
  }
  applyLang();
  $('#lang').addEventListener('change', (e) => {
    lang = e.target.value;
    localStorage.setItem('cw-lang', lang);
    applyLang();
    renderLive();
    if (loaded.charts) loadCharts().catch(report);
  });
  for (const b of document.querySelectorAll('#tabs button')) b.addEventListener('click', () => showTab(b.dataset.tab));
  $('#login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const res = await fetch('/api/login', { method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ token: $('#login-token').value }) });
    if (!res.ok) { $('#login-error').textContent = t('login.bad'); return; }
    $('#login-token').value = '';
    $('#login-error').textContent = '';
    start();
  });
  $('#logout').addEventListener('click', async () => {
    await fetch('/api/logout', { method: 'POST', credentials: 'same-origin' });
    location.reload();
  });
  $('#calls-filter').addEventListener('submit', (ev) => { ev.preventDefault(); loadCalls(false).catch(report); });
  $('#calls-more').addEventListener('click', () => loadCalls(true).catch(report));
  $('#check-form').addEventListener('submit', check);
  $('#charts-filter').addEventListener('submit', (ev) => { ev.preventDefault(); loadCharts().catch(report); });
  $('#rec-filter').addEventListener('submit', (ev) => { ev.preventDefault(); loadRecordings().catch(report); });
  $('#sample-form').addEventListener('submit', (ev) => drawSample(ev).catch(report));
  $('#register-filter').addEventListener('submit', (ev) => { ev.preventDefault(); loadRegister().catch(report); });
  $('#approval-form').addEventListener('submit', addApproval);
  const audio = $('#audio');
  audio.addEventListener('timeupdate', () => drawWave(audio.duration ? audio.currentTime / audio.duration : 0));
  $('#waveform').addEventListener('click', (ev) => {
    if (!audio.duration) return;
    const r = ev.target.getBoundingClientRect();
    audio.currentTime = ((ev.clientX - r.left) / r.width) * audio.duration;
  });
  start();
});
