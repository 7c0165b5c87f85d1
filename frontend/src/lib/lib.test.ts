import { countdown } from './time';
import userIds from '../../../crates/domain/user-ids.json';
import { USER_ID_MAX, userIdProblem, userIdProblemKind } from './userId';

type Case = string | { repeat: string; times: number };

describe('userIdProblem', () => {
  // The same cases the api's domain::UserId is tested with.
  const cases = userIds as {
    maxLength: number;
    accepted: Case[];
    refused: { userId: Case; problem: string }[];
  };
  const text = (c: Case) => (typeof c === 'string' ? c : c.repeat.repeat(c.times));

  it('has the api\'s maximum length', () => {
    expect(USER_ID_MAX).toBe(cases.maxLength);
  });
  it('accepts what the api accepts', () => {
    for (const ok of cases.accepted) {
      expect(userIdProblem(text(ok)), text(ok)).toBeNull();
    }
  });
  it('refuses what the api refuses, for the same reason', () => {
    for (const refused of cases.refused) {
      expect(userIdProblemKind(text(refused.userId)), JSON.stringify(refused)).toBe(refused.problem);
    }
  });
  it('explains each problem in the shop\'s words', () => {
    expect(userIdProblem('')).toMatch(/enter/i);
    expect(userIdProblem('a'.repeat(256))).toMatch(/255/);
    expect(userIdProblem('a\tb')).toMatch(/control/i);
  });
});

describe('countdown', () => {
  it('formats minutes, hours and days', () => {
    expect(countdown(65_000, 0)).toBe('01:05');
    expect(countdown(3_723_000, 0)).toBe('01:02:03');
    expect(countdown(90_061_000, 0)).toBe('1d 01:01:01');
    expect(countdown(0, 5_000)).toBe('00:00');
  });
});
