/**
 * The api's rule for a user id, checked before sending: 1 to 255
 * characters, not blank, no control characters. The api's `domain::UserId`
 * is the rule; both check the cases of `crates/domain/user-ids.json`.
 */
export const USER_ID_MAX = 255;

/** What is wrong with a user id, as the api would say it. */
export type UserIdProblem = 'empty' | 'tooLong' | 'control';

const CONTROL = /\p{Cc}/u;

/** The kind of problem with `raw`, or null when it is a valid user id. */
export function userIdProblemKind(raw: string): UserIdProblem | null {
  if (raw.trim() === '') return 'empty';
  // Characters as the api counts them (code points, not UTF-16 units).
  if ([...raw].length > USER_ID_MAX) return 'tooLong';
  if (CONTROL.test(raw)) return 'control';
  return null;
}

const MESSAGES: Record<UserIdProblem, string> = {
  empty: 'Enter your user id.',
  tooLong: `At most ${USER_ID_MAX} characters.`,
  control: 'No control characters (tabs, line breaks).',
};

/** The problem with `raw` in the shop's words, or null when it is valid. */
export function userIdProblem(raw: string): string | null {
  const kind = userIdProblemKind(raw);
  return kind === null ? null : MESSAGES[kind];
}
