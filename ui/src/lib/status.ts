// Pure functions that turn the core's status into what the shell shows.
import type { AppStatus, CommandError, ConfigProblem, ModelRole, StatusLoad } from './types';

export type Lang = 'ko' | 'en';

/** Korean when the locale starts with "ko" (ko, ko-KR, ko_KR.UTF-8), English otherwise. */
export function pickLanguage(locale: string | null | undefined): Lang {
  return locale && locale.trim().toLowerCase().startsWith('ko') ? 'ko' : 'en';
}

/** The personas whose missing model deserves a banner. */
export const PERSONA_ROLES = ['office', 'character'] as const satisfies readonly ModelRole[];
export type PersonaRole = (typeof PERSONA_ROLES)[number];

export type BannerSeverity = 'error' | 'warning' | 'info';

export type Banner =
  | {
      id: 'config';
      severity: BannerSeverity;
      /** True when the app ignored the user's file and runs on the built-in defaults. */
      onDefaults: boolean;
      configFile: string;
      problems: ConfigProblem[];
    }
  | {
      id: `model-${PersonaRole}`;
      severity: 'warning';
      role: PersonaRole;
      /** Every persona that uses this missing file (both, when they share one model). */
      roles: PersonaRole[];
      configured: string;
      resolvedPath: string;
    }
  | { id: 'store'; severity: 'error'; error: CommandError }
  | { id: 'status-error'; severity: 'error'; error: CommandError }
  | { id: 'no-tauri'; severity: 'info' };

export type BannerId = Banner['id'];

/** Banners for a status reply, most severe first. An empty list means all is well. */
export function bannersFor(status: AppStatus): Banner[] {
  const banners: Banner[] = [];
  if (!status.store.ok) {
    banners.push({ id: 'store', severity: 'error', error: status.store.error });
  }
  if (status.config_problems.length > 0) {
    const onDefaults = status.config_source === 'builtin_default';
    banners.push({
      id: 'config',
      severity: onDefaults ? 'error' : 'warning',
      onDefaults,
      configFile: status.paths.config_file,
      problems: status.config_problems,
    });
  }
  for (const role of PERSONA_ROLES) {
    const model = status.models.find((m) => m.role === role);
    // A persona on a server does not use its file: a missing one is no problem.
    if (model && !model.installed && !model.remote) {
      // Personas that share one file get one banner, not two identical ones.
      const shared = banners.find(
        (b): b is Extract<Banner, { id: `model-${PersonaRole}` }> =>
          b.id.startsWith('model-') && 'resolvedPath' in b && b.resolvedPath === model.resolved_path,
      );
      if (shared) {
        shared.roles.push(role);
        continue;
      }
      banners.push({
        id: `model-${role}`,
        severity: 'warning',
        role,
        roles: [role],
        configured: model.configured,
        resolvedPath: model.resolved_path,
      });
    }
  }
  return banners;
}

/** Banners for whatever state the status load is in. */
export function bannersForLoad(load: StatusLoad): Banner[] {
  switch (load.kind) {
    case 'loading':
      return [];
    case 'no-tauri':
      return [{ id: 'no-tauri', severity: 'info' }];
    case 'error':
      return [{ id: 'status-error', severity: 'error', error: load.error }];
    case 'ok':
      return bannersFor(load.status);
  }
}

/** Whether the user may hide a banner for the session. */
export function isDismissible(banner: Banner): boolean {
  return banner.id !== 'no-tauri';
}

/** Drops the banners the user dismissed this session. */
export function visibleBanners(banners: Banner[], dismissed: ReadonlySet<string>): Banner[] {
  return banners.filter((b) => !(isDismissible(b) && dismissed.has(b.id)));
}

/** Megabytes (10^6 bytes) with one decimal, or null when the size is unknown. */
export function formatMegabytes(bytes: number | null | undefined, lang: Lang): string | null {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes) || bytes < 0) return null;
  return new Intl.NumberFormat(lang === 'ko' ? 'ko-KR' : 'en-US', {
    minimumFractionDigits: 1,
    maximumFractionDigits: 1,
  }).format(bytes / 1_000_000);
}
