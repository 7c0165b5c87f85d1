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

/** How the api knows the buyer; `none` until it has said. */
export function useConfig(): ClientConfig | null {
  const [config, setConfig] = useState<ClientConfig | null>(null);
  useEffect(() => {
    const controller = new AbortController();
    getConfig(controller.signal)
      .then(setConfig)
      .catch(() => !controller.signal.aborted && setConfig({ buyerAuth: 'none' }));
    return () => controller.abort();
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

  return { session, error, signIn, signOut };
}
