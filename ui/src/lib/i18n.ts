// UI strings in English and Korean. `ko` must have exactly the keys of `en` (checked by the
// compiler); placeholders are written `{name}` and filled by `translate`/`formatParts`.
import type { Lang } from './status';

export const en = {
  'app.name': 'Deskmate',
  'app.tagline': 'Offline office assistant',
  'app.loading': 'Starting…',
  'app.version': 'Version {version}',

  'topbar.language': 'Language',

  'nav.label': 'Main navigation',
  'nav.chat': 'Chat',
  'nav.cards': 'Cards',
  'nav.documents': 'Documents',
  'nav.monitor': 'Monitor',
  'nav.models': 'Models',
  'nav.settings': 'Settings',

  'page.chat.title': 'Chat',
  'page.chat.subtitle': 'Talk with your office assistant or a character persona.',
  'page.chat.empty.title': 'No conversations yet',
  'page.chat.empty.body':
    'Conversations with your office assistant and character persona will appear here.',
  'page.chat.empty.hint': 'Everything runs on this computer; nothing leaves it.',

  'page.cards.title': 'Cards',
  'page.cards.subtitle': 'Messages you saved to come back to.',
  'page.cards.empty.title': 'No cards yet',
  'page.cards.empty.body':
    'Messages you save as cards, with an optional note, will appear here. Open a card to jump back to its conversation.',

  'page.documents.title': 'Documents',
  'page.documents.subtitle': 'Your files, indexed and searched on this computer.',
  'page.documents.empty.title': 'No documents yet',
  'page.documents.empty.body':
    'Imported files and folders (txt, md, pdf, docx, html, csv) and search across them will appear here.',

  'page.monitor.title': 'Monitor',
  'page.monitor.subtitle': 'Hardware usage while the models run.',
  'page.monitor.empty.title': 'No readings yet',
  'page.monitor.empty.body':
    'Live GPU VRAM, utilisation, temperature and power will appear here. Without an NVIDIA GPU, CPU and RAM usage is shown instead.',

  'monitor.gauge.label': 'Hardware usage. Open the monitor.',
  'monitor.gauge.gpu': 'GPU {index}: VRAM {usage}, {temperature}',
  'monitor.gauge.cpu': 'CPU {usage}',
  'monitor.gauge.ram': 'RAM {usage}',
  'monitor.gauge.warnings': 'Warnings: {count}',
  'monitor.warnings.title': 'Warnings',
  'monitor.warning.temperature': 'GPU {gpu} is at {value} °C (warning above {threshold} °C)',
  'monitor.warning.vram': 'GPU {gpu} VRAM is {value}% full (warning above {threshold}%)',
  'monitor.no_gpu.title': 'No NVIDIA GPU was found',
  'monitor.no_gpu.reason': 'Reason: {reason}',
  'monitor.no_gpu.body': 'CPU and RAM usage is shown instead.',
  'monitor.error': 'Could not read the hardware monitor. {code}: {message}',
  'monitor.gpu.title': 'GPU {index}',
  'monitor.unsupported': 'Not supported by this GPU',
  'monitor.stat.vram': 'VRAM',
  'monitor.stat.gpu_util': 'GPU utilisation',
  'monitor.stat.mem_util': 'Memory utilisation',
  'monitor.stat.power': 'Power',
  'monitor.stat.temperature': 'Temperature',
  'monitor.stat.fan': 'Fan',
  'monitor.stat.clocks': 'Clocks',
  'monitor.stat.process_vram': 'VRAM used by Deskmate',
  'monitor.stat.cpu': 'CPU',
  'monitor.stat.cores': '{count} cores',
  'monitor.stat.ram': 'RAM',
  'monitor.clock.graphics': 'Graphics',
  'monitor.clock.sm': 'SM',
  'monitor.clock.memory': 'Memory',
  'monitor.chart.vram': 'VRAM used',
  'monitor.chart.util': 'Utilisation',
  'monitor.chart.power': 'Power draw',
  'monitor.chart.temp': 'Temperature',
  'monitor.chart.cpu': 'CPU usage',
  'monitor.chart.ram': 'RAM used',
  'monitor.chart.summary': '{title} over the last {minutes} minutes: {current} now, between {min} and {max}.',
  'monitor.chart.empty': '{title}: no data yet.',
  'monitor.chart.ago': '{minutes} min ago',
  'monitor.chart.now': 'now',
  'monitor.series.gpu': 'GPU',
  'monitor.series.memory': 'Memory',
  'monitor.system.title': 'System',
  'monitor.gpus.title': 'GPUs',
  'monitor.placements.title': 'Models on GPUs',
  'monitor.placements.line': '{persona} → GPU {gpu}, layers: {layers} ({state})',
  'monitor.placements.auto': 'auto',
  'monitor.placements.not_loaded': 'not loaded yet',
  'monitor.placements.loaded': 'loaded',
  'monitor.placements.loaded_on': 'loaded, {on} layers on the GPU',
  'monitor.placements.loaded_of': 'loaded, {on} of {total} layers on the GPU',

  'page.models.title': 'Models',
  'page.models.subtitle': 'The models each persona uses and their status.',
  'page.models.empty.title': 'No model information',
  'page.models.empty.body': 'The models configured in config.json will be listed here.',
  'page.models.col.role': 'Role',
  'page.models.col.configured': 'Configured path',
  'page.models.col.status': 'Status',
  'page.models.col.size': 'Size',
  'page.models.installed': 'Installed',
  'page.models.missing': 'Missing',
  'page.models.size': '{size} MB',
  'page.models.size_unknown': '—',
  'page.models.resolved': 'Resolved to {path}',
  'page.models.fetch_hint': 'Download the default models with {cmd1} or {cmd2}.',
  'engine.title': 'Loaded models',
  'engine.state.not_loaded': 'Not loaded',
  'engine.state.loading': 'Loading…',
  'engine.state.loaded': 'Loaded',
  'engine.state.failed': 'Failed to load',
  'engine.unavailable': 'The inference engine is unavailable: {message}',
  'engine.model': 'Model',
  'engine.placement': 'Placement',
  'engine.placement.gpu': '{layers} layers on GPU {gpu}',
  'engine.placement.cpu': 'CPU only ({layers} layers)',
  'engine.context': 'Context',
  'engine.context.value': '{n_ctx} tokens, {parallel} slots of {per_slot}',
  'engine.template': 'Chat template',
  'engine.load_time': 'Load time',
  'engine.load_time.value': '{seconds} s',
  'engine.shared': 'Shares the weights of the {persona} model',
  'engine.attempts': 'Load attempts',
  'engine.attempt': '{layers} GPU layers, context {n_ctx}',
  'engine.attempt.ok': 'loaded',
  'engine.attempt.oom': 'out of memory',
  'engine.stats': 'Statistics',
  'engine.stats.requests': 'Requests',
  'engine.stats.success': 'Success rate',
  'engine.stats.latency': 'Latency mean / p95',
  'engine.stats.ttft': 'First token mean / p95',
  'engine.stats.prompt_tps': 'Prompt tokens/s',
  'engine.stats.gen_tps': 'Generation tokens/s',
  'engine.stats.queue': 'Queue / active slots',
  'engine.stats.ms': '{mean} / {p95} ms',
  'engine.stats.slots': '{queue} / {active} of {slots}',

  'page.settings.title': 'Settings',
  'page.settings.subtitle': 'Where Deskmate keeps its files, and how it is configured.',
  'page.settings.empty.title': 'Settings are not available',
  'page.settings.empty.body':
    'Configuration, file locations and preferences will appear here when Deskmate runs as the desktop app.',
  'page.settings.paths': 'Files and folders',
  'page.settings.path.config_file': 'Configuration file',
  'page.settings.path.data_dir': 'Data folder',
  'page.settings.path.models_dir': 'Models folder',
  'page.settings.path.database': 'Database',
  'page.settings.config': 'Configuration',
  'page.settings.source.user': 'Loaded from your configuration file.',
  'page.settings.source.created_from_default':
    'Your configuration file was created from the defaults.',
  'page.settings.source.builtin_default':
    'Your configuration file is invalid; Deskmate is running on the built-in defaults.',
  'page.settings.config_ok': 'No problems found in the configuration.',
  'page.settings.config_problems': 'Problems in the configuration file',
  'page.settings.store': 'Database',
  'page.settings.store_ok':
    'Open (schema version {version}): {sessions} sessions, {cards} cards, {documents} documents.',
  'page.settings.store_failed': 'The database could not be opened.',
  'page.settings.about': 'About',
  'page.settings.version': 'Version',
  'page.settings.locale': 'System locale',
  'page.settings.more': 'Theme, language and default tone preferences will be added here.',

  'role.office': 'Office assistant',
  'role.character': 'Character',
  'role.speech': 'Speech recognition',
  'role.embedding': 'Document embedding',

  'banner.dismiss': 'Dismiss',
  'banner.config.title': 'The configuration file has problems',
  'banner.config.title_defaults': 'Configuration problems: running on the built-in defaults',
  'banner.config.body': 'Check {file}:',
  'banner.config.body_defaults':
    'Deskmate could not use {file} and is running on the built-in defaults. Fix these problems and restart:',
  'banner.config.syntax': '(syntax)',
  'banner.model.title': '{role} model is not installed',
  'banner.model.titleShared': 'The chat model of both personas is not installed',
  'banner.model.body': 'Expected at {path}. Download the default models with {cmd1} or {cmd2}.',
  'banner.model.action': 'Open Models',
  'banner.store.title': 'The database could not be opened',
  'banner.store.body': 'Sessions, cards and documents are unavailable. {code}: {message}',
  'banner.status.title': 'Could not read the app status',
  'banner.status.body': '{code}: {message}',
  'banner.notauri.title': 'Not running inside the Deskmate app',
  'banner.notauri.body':
    'This page is open in a plain browser, so there is no local core to talk to. Start the Deskmate app to use it.',
};

export type MessageKey = keyof typeof en;
export type Messages = Readonly<Record<MessageKey, string>>;

export const ko: Messages = {
  'app.name': 'Deskmate',
  'app.tagline': '오프라인 사무 비서',
  'app.loading': '시작하는 중…',
  'app.version': '버전 {version}',

  'topbar.language': '언어',

  'nav.label': '주 메뉴',
  'nav.chat': '대화',
  'nav.cards': '카드',
  'nav.documents': '문서',
  'nav.monitor': '모니터',
  'nav.models': '모델',
  'nav.settings': '설정',

  'page.chat.title': '대화',
  'page.chat.subtitle': '사무 비서나 캐릭터 페르소나와 대화합니다.',
  'page.chat.empty.title': '아직 대화가 없습니다',
  'page.chat.empty.body': '사무 비서 및 캐릭터 페르소나와 나눈 대화가 여기에 표시됩니다.',
  'page.chat.empty.hint': '모든 처리는 이 컴퓨터에서 이루어지며, 어떤 데이터도 밖으로 나가지 않습니다.',

  'page.cards.title': '카드',
  'page.cards.subtitle': '다시 보려고 저장한 메시지입니다.',
  'page.cards.empty.title': '아직 카드가 없습니다',
  'page.cards.empty.body':
    '카드로 저장한 메시지가 메모와 함께 여기에 표시됩니다. 카드를 열면 해당 대화로 바로 이동합니다.',

  'page.documents.title': '문서',
  'page.documents.subtitle': '이 컴퓨터에서 색인하고 검색하는 내 파일입니다.',
  'page.documents.empty.title': '아직 문서가 없습니다',
  'page.documents.empty.body':
    '가져온 파일과 폴더(txt, md, pdf, docx, html, csv) 목록과 문서 검색이 여기에 표시됩니다.',

  'page.monitor.title': '모니터',
  'page.monitor.subtitle': '모델이 실행되는 동안의 하드웨어 사용량입니다.',
  'page.monitor.empty.title': '아직 측정값이 없습니다',
  'page.monitor.empty.body':
    'GPU VRAM, 사용률, 온도, 전력이 실시간으로 여기에 표시됩니다. NVIDIA GPU가 없으면 CPU와 RAM 사용량을 대신 보여 줍니다.',

  'monitor.gauge.label': '하드웨어 사용량. 모니터를 엽니다.',
  'monitor.gauge.gpu': 'GPU {index}: VRAM {usage}, {temperature}',
  'monitor.gauge.cpu': 'CPU {usage}',
  'monitor.gauge.ram': 'RAM {usage}',
  'monitor.gauge.warnings': '경고: {count}개',
  'monitor.warnings.title': '경고',
  'monitor.warning.temperature': 'GPU {gpu}의 온도가 {value} °C입니다 (경고 기준 {threshold} °C 초과)',
  'monitor.warning.vram': 'GPU {gpu}의 VRAM이 {value}% 찼습니다 (경고 기준 {threshold}% 초과)',
  'monitor.no_gpu.title': 'NVIDIA GPU를 찾지 못했습니다',
  'monitor.no_gpu.reason': '이유: {reason}',
  'monitor.no_gpu.body': '대신 CPU와 RAM 사용량을 보여 줍니다.',
  'monitor.error': '하드웨어 모니터를 읽지 못했습니다. {code}: {message}',
  'monitor.gpu.title': 'GPU {index}',
  'monitor.unsupported': '이 GPU에서 지원하지 않음',
  'monitor.stat.vram': 'VRAM',
  'monitor.stat.gpu_util': 'GPU 사용률',
  'monitor.stat.mem_util': '메모리 사용률',
  'monitor.stat.power': '전력',
  'monitor.stat.temperature': '온도',
  'monitor.stat.fan': '팬',
  'monitor.stat.clocks': '클럭',
  'monitor.stat.process_vram': 'Deskmate가 쓰는 VRAM',
  'monitor.stat.cpu': 'CPU',
  'monitor.stat.cores': '{count}코어',
  'monitor.stat.ram': 'RAM',
  'monitor.clock.graphics': '그래픽',
  'monitor.clock.sm': 'SM',
  'monitor.clock.memory': '메모리',
  'monitor.chart.vram': 'VRAM 사용량',
  'monitor.chart.util': '사용률',
  'monitor.chart.power': '소비 전력',
  'monitor.chart.temp': '온도',
  'monitor.chart.cpu': 'CPU 사용률',
  'monitor.chart.ram': 'RAM 사용량',
  'monitor.chart.summary': '최근 {minutes}분 동안의 {title}: 현재 {current}, 범위 {min}~{max}.',
  'monitor.chart.empty': '{title}: 아직 데이터가 없습니다.',
  'monitor.chart.ago': '{minutes}분 전',
  'monitor.chart.now': '지금',
  'monitor.series.gpu': 'GPU',
  'monitor.series.memory': '메모리',
  'monitor.system.title': '시스템',
  'monitor.gpus.title': 'GPU',
  'monitor.placements.title': 'GPU에 올린 모델',
  'monitor.placements.line': '{persona} → GPU {gpu}, 레이어: {layers} ({state})',
  'monitor.placements.auto': '자동',
  'monitor.placements.not_loaded': '아직 로드되지 않음',
  'monitor.placements.loaded': '로드됨',
  'monitor.placements.loaded_on': '로드됨, GPU에 레이어 {on}개',
  'monitor.placements.loaded_of': '로드됨, 레이어 {total}개 중 {on}개가 GPU에 있음',

  'page.models.title': '모델',
  'page.models.subtitle': '각 페르소나가 사용하는 모델과 그 상태입니다.',
  'page.models.empty.title': '모델 정보가 없습니다',
  'page.models.empty.body': 'config.json에 설정된 모델이 여기에 표시됩니다.',
  'page.models.col.role': '역할',
  'page.models.col.configured': '설정된 경로',
  'page.models.col.status': '상태',
  'page.models.col.size': '크기',
  'page.models.installed': '설치됨',
  'page.models.missing': '없음',
  'page.models.size': '{size} MB',
  'page.models.size_unknown': '—',
  'page.models.resolved': '실제 경로: {path}',
  'page.models.fetch_hint': '{cmd1} 또는 {cmd2} 명령으로 기본 모델을 내려받으세요.',
  'engine.title': '불러온 모델',
  'engine.state.not_loaded': '불러오지 않음',
  'engine.state.loading': '불러오는 중…',
  'engine.state.loaded': '불러옴',
  'engine.state.failed': '불러오기 실패',
  'engine.unavailable': '추론 엔진을 사용할 수 없습니다: {message}',
  'engine.model': '모델',
  'engine.placement': '배치',
  'engine.placement.gpu': 'GPU {gpu}에 {layers}개 레이어',
  'engine.placement.cpu': 'CPU만 사용 ({layers}개 레이어)',
  'engine.context': '컨텍스트',
  'engine.context.value': '{n_ctx} 토큰, 슬롯 {parallel}개 × {per_slot}',
  'engine.template': '채팅 템플릿',
  'engine.load_time': '불러온 시간',
  'engine.load_time.value': '{seconds}초',
  'engine.shared': '{persona} 모델과 가중치를 공유합니다',
  'engine.attempts': '불러오기 시도',
  'engine.attempt': 'GPU 레이어 {layers}개, 컨텍스트 {n_ctx}',
  'engine.attempt.ok': '성공',
  'engine.attempt.oom': '메모리 부족',
  'engine.stats': '통계',
  'engine.stats.requests': '요청',
  'engine.stats.success': '성공률',
  'engine.stats.latency': '지연 시간 평균 / p95',
  'engine.stats.ttft': '첫 토큰 평균 / p95',
  'engine.stats.prompt_tps': '프롬프트 토큰/초',
  'engine.stats.gen_tps': '생성 토큰/초',
  'engine.stats.queue': '대기열 / 사용 중 슬롯',
  'engine.stats.ms': '{mean} / {p95} ms',
  'engine.stats.slots': '{queue} / {active} (전체 {slots})',

  'page.settings.title': '설정',
  'page.settings.subtitle': 'Deskmate가 파일을 보관하는 위치와 구성입니다.',
  'page.settings.empty.title': '설정을 사용할 수 없습니다',
  'page.settings.empty.body':
    'Deskmate 데스크톱 앱에서 실행하면 구성, 파일 위치, 환경설정이 여기에 표시됩니다.',
  'page.settings.paths': '파일과 폴더',
  'page.settings.path.config_file': '구성 파일',
  'page.settings.path.data_dir': '데이터 폴더',
  'page.settings.path.models_dir': '모델 폴더',
  'page.settings.path.database': '데이터베이스',
  'page.settings.config': '구성',
  'page.settings.source.user': '사용자 구성 파일을 불러왔습니다.',
  'page.settings.source.created_from_default': '기본값으로 구성 파일을 새로 만들었습니다.',
  'page.settings.source.builtin_default':
    '구성 파일이 올바르지 않아 내장 기본값으로 실행 중입니다.',
  'page.settings.config_ok': '구성에 문제가 없습니다.',
  'page.settings.config_problems': '구성 파일의 문제',
  'page.settings.store': '데이터베이스',
  'page.settings.store_ok':
    '열림(스키마 버전 {version}): 대화 {sessions}개, 카드 {cards}개, 문서 {documents}개.',
  'page.settings.store_failed': '데이터베이스를 열 수 없습니다.',
  'page.settings.about': '정보',
  'page.settings.version': '버전',
  'page.settings.locale': '시스템 로캘',
  'page.settings.more': '테마, 언어, 기본 말투 설정이 여기에 추가될 예정입니다.',

  'role.office': '사무 비서',
  'role.character': '캐릭터',
  'role.speech': '음성 인식',
  'role.embedding': '문서 임베딩',

  'banner.dismiss': '닫기',
  'banner.config.title': '구성 파일에 문제가 있습니다',
  'banner.config.title_defaults': '구성 파일 문제: 내장 기본값으로 실행 중',
  'banner.config.body': '{file} 파일을 확인하세요:',
  'banner.config.body_defaults':
    '{file} 파일을 사용할 수 없어 내장 기본값으로 실행 중입니다. 아래 문제를 고친 뒤 다시 시작하세요:',
  'banner.config.syntax': '(구문)',
  'banner.model.title': '{role} 모델이 설치되어 있지 않습니다',
  'banner.model.titleShared': '두 페르소나가 함께 쓰는 대화 모델이 설치되어 있지 않습니다',
  'banner.model.body': '예상 위치: {path}. {cmd1} 또는 {cmd2} 명령으로 기본 모델을 내려받으세요.',
  'banner.model.action': '모델 페이지 열기',
  'banner.store.title': '데이터베이스를 열 수 없습니다',
  'banner.store.body': '대화, 카드, 문서를 사용할 수 없습니다. {code}: {message}',
  'banner.status.title': '앱 상태를 읽지 못했습니다',
  'banner.status.body': '{code}: {message}',
  'banner.notauri.title': 'Deskmate 앱 안에서 실행되고 있지 않습니다',
  'banner.notauri.body':
    '일반 브라우저에서 열린 페이지라 연결할 로컬 코어가 없습니다. Deskmate 앱을 실행해 사용하세요.',
};

export const messages: Readonly<Record<Lang, Messages>> = { en, ko };

export type Vars = Readonly<Record<string, string | number>>;

/** A piece of a translated string: literal text, or the value of a placeholder. */
export type Part = { text: string; name?: undefined } | { text: string; name: string };

const PLACEHOLDER = /\{([a-zA-Z0-9_]+)\}/g;

/** Splits a template into text and placeholder parts so callers can style the values. */
export function formatParts(template: string, vars: Vars = {}): Part[] {
  const parts: Part[] = [];
  let last = 0;
  for (const match of template.matchAll(PLACEHOLDER)) {
    const name = match[1] ?? '';
    const start = match.index;
    if (start > last) parts.push({ text: template.slice(last, start) });
    const value = vars[name];
    parts.push(value === undefined ? { text: match[0] } : { text: String(value), name });
    last = start + match[0].length;
  }
  if (last < template.length) parts.push({ text: template.slice(last) });
  return parts;
}

/** The placeholder names used in a template, in order. */
export function placeholders(template: string): string[] {
  return [...template.matchAll(PLACEHOLDER)].map((m) => m[1] ?? '');
}

export function translate(lang: Lang, key: MessageKey, vars?: Vars): string {
  const template = messages[lang][key];
  return vars ? formatParts(template, vars).map((p) => p.text).join('') : template;
}

export type Translator = {
  (key: MessageKey, vars?: Vars): string;
  readonly lang: Lang;
  /** The template split into parts, for rendering values as code. */
  parts(key: MessageKey, vars?: Vars): Part[];
};

export function makeTranslator(lang: Lang): Translator {
  const t = (key: MessageKey, vars?: Vars) => translate(lang, key, vars);
  return Object.assign(t, {
    lang,
    parts: (key: MessageKey, vars?: Vars) => formatParts(messages[lang][key], vars),
  });
}
