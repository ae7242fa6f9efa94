import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import type { Profile, ProfilesApi } from '../lib/documents';
import { makeTranslator } from '../lib/i18n';
import { toasts } from '../lib/toasts.svelte';
import ProfilesSection from './ProfilesSection.svelte';

const t = makeTranslator('en');

const kim: Profile = { id: 1, name: 'Kim', clearance: 'restricted', created_at: 0 };
const intern: Profile = { id: 2, name: 'Intern', clearance: 'public', created_at: 0 };

function fakeApi(): ProfilesApi {
  return {
    list: vi.fn(() => Promise.resolve({ active: 1, profiles: [kim, intern] })),
    create: vi.fn((name: string, clearance: Profile['clearance']) => Promise.resolve({ id: 3, name, clearance, created_at: 0 })),
    activate: vi.fn((id: number) => Promise.resolve(id === 2 ? intern : kim)),
    remove: vi.fn(() => Promise.resolve(null)),
  };
}

beforeEach(() => {
  toasts.items = [];
});

describe('ProfilesSection', () => {
  it('lists profiles with their clearance and marks the active one', async () => {
    render(ProfilesSection, { t, api: fakeApi() });
    await waitFor(() => expect(screen.getByTestId('profile-row-2')).toBeTruthy());
    expect(screen.getByTestId('profile-row-1').dataset.active).toBe('true');
    expect(screen.getByTestId('profile-row-1').textContent).toContain('Restricted');
    expect(screen.getByTestId('profile-row-2').textContent).toContain('Public');
    // The active profile can be neither used again nor deleted.
    expect(screen.queryByTestId('profile-use-1')).toBeNull();
    expect(screen.queryByTestId('profile-delete-1')).toBeNull();
  });

  it('switches the profile and tells the page', async () => {
    const api = fakeApi();
    const onSwitched = vi.fn();
    render(ProfilesSection, { t, api, onSwitched });
    await waitFor(() => expect(screen.getByTestId('profile-use-2')).toBeTruthy());
    await fireEvent.click(screen.getByTestId('profile-use-2'));
    expect(api.activate).toHaveBeenCalledWith(2);
    await waitFor(() => expect(onSwitched).toHaveBeenCalledWith(intern));
    expect(screen.getByTestId('profile-row-2').dataset.active).toBe('true');
    expect(screen.getByTestId('profile-use-1')).toBeTruthy();
    expect(toasts.items[0]).toMatchObject({ kind: 'info', key: 'profiles.switched', vars: { name: 'Intern' } });
  });

  it('asks before deleting a profile', async () => {
    const api = fakeApi();
    render(ProfilesSection, { t, api });
    await waitFor(() => expect(screen.getByTestId('profile-delete-2')).toBeTruthy());
    await fireEvent.click(screen.getByTestId('profile-delete-2'));
    expect(api.remove).not.toHaveBeenCalled();
    await fireEvent.click(screen.getByTestId('confirm-delete'));
    expect(api.remove).toHaveBeenCalledWith(2);
    await waitFor(() => expect(screen.queryByTestId('profile-row-2')).toBeNull());
  });

  it('adds a profile with a name and clearance', async () => {
    const api = fakeApi();
    render(ProfilesSection, { t, api });
    await waitFor(() => expect(screen.getByTestId('profile-row-1')).toBeTruthy());
    expect((screen.getByTestId('profile-add') as HTMLButtonElement).disabled).toBe(true);
    await fireEvent.input(screen.getByTestId('profile-new-name'), { target: { value: '  Lee ' } });
    await fireEvent.change(screen.getByTestId('profile-new-clearance'), { target: { value: 'confidential' } });
    await fireEvent.click(screen.getByTestId('profile-add'));
    expect(api.create).toHaveBeenCalledWith('Lee', 'confidential');
    await waitFor(() => expect(screen.getByTestId('profile-row-3').textContent).toContain('Confidential'));
    expect((screen.getByTestId('profile-new-name') as HTMLInputElement).value).toBe('');
  });

  it('shows a refused change as a red toast', async () => {
    const api = fakeApi();
    api.create = vi.fn(() => Promise.reject({ code: 'invalid_input', message: 'a profile named "Kim" already exists' }));
    render(ProfilesSection, { t, api });
    await waitFor(() => expect(screen.getByTestId('profile-row-1')).toBeTruthy());
    await fireEvent.input(screen.getByTestId('profile-new-name'), { target: { value: 'Kim' } });
    await fireEvent.click(screen.getByTestId('profile-add'));
    await waitFor(() => expect(toasts.items[0]).toMatchObject({ kind: 'error', code: 'invalid_input', key: 'documents.error.invalid_input' }));
  });
});
