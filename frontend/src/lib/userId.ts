/** The api's rules for a user id, checked before sending. */
export const USER_ID_MAX = 64;
const ALLOWED = /^[A-Za-z0-9._@+:-]+$/;

/** The problem with `raw`, or null when it is a valid user id. */
export function userIdProblem(raw: string): string | null {
  if (raw.trim() === '') return 'Enter your user id.';
  if (raw.length > USER_ID_MAX) return `At most ${USER_ID_MAX} characters.`;
  if (!ALLOWED.test(raw)) return 'Use letters, digits and . _ - @ + : only (no spaces).';
  return null;
}
