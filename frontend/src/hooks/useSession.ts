import { useCallback, useEffect, useState } from 'react';
import { getConfig, signIn as requestSignIn } from '../api/client';
import type { ClientConfig, Session } from '../api/types';

const KEY = 'flash-sale-session';

function stored(): Session | null {
  try {
    const raw = sessionStorage.getItem(KEY);
    const session = raw ? (JSON.parse(raw) as Session) : null;
    return session && session.expiresAt * 1000 > Date.now() ? session : null;
  } catch {
    return null;
  }
}

/** How often the config is asked again while the api cannot answer. */
export const CONFIG_RETRY_MS = 2000;

/**
 * How the api knows the buyer; null until it has said. An api that cannot
 * answer is asked again (guessing `none` would hide a sign-in the api
 * requires); an api without /api/config is the open contract.
 */
export function useConfig(): ClientConfig | null {
  const [config, setConfig] = useState<ClientConfig | null>(null);
  useEffect(() => {
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const ask = () =>
      getConfig(controller.signal)
        .then(setConfig)
        .catch(() => {
          if (!controller.signal.aborted) timer = setTimeout(ask, CONFIG_RETRY_MS);
        });
    ask();
    return () => {
      controller.abort();
      clearTimeout(timer);
    };
  }, []);
  return config;
}

/** The signed-in buyer (kept for this tab until the token expires). */
export function useSession(signInUrl: string | undefined) {
  const [session, setSession] = useState<Session | null>(stored);
  const [error, setError] = useState<string | null>(null);

  const signIn = useCallback(
    async (name: string) => {
      setError(null);
      if (!signInUrl) {
        setError('This shop has not said where to sign in.');
        return;
      }
      try {
        const next = await requestSignIn(signInUrl, name);
        sessionStorage.setItem(KEY, JSON.stringify(next));
        setSession(next);
      } catch (e) {
        setError(e instanceof Error ? e.message : 'Sign-in failed.');
      }
    },
    [signInUrl],
  );

  const signOut = useCallback(() => {
    sessionStorage.removeItem(KEY);
    setSession(null);
  }, []);

  // A token past its exp signs the buyer out (the api would refuse it).
  useEffect(() => {
    if (!session) return;
    const left = session.expiresAt * 1000 - Date.now();
    const timer = setTimeout(signOut, Math.max(0, left));
    return () => clearTimeout(timer);
  }, [session, signOut]);

  return { session, error, signIn, signOut };
}
