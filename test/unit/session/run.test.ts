import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { exitNotice } from '../../../src/session/run.js';

describe('the notice of a foreground app that exited', () => {
  it('gives the exit code and, for a failure, the last lines', () => {
    assert.equal(
      exitNotice({ code: 3, lastLines: 'listening\nfatal: lost the database' }),
      'The local container exited with code 3; ending the session. Its last lines:\nlistening\nfatal: lost the database',
    );
  });

  it('gives only the code when the app ended cleanly or printed nothing', () => {
    assert.equal(
      exitNotice({ code: 0, lastLines: 'bye' }),
      'The local container exited with code 0; ending the session.',
    );
    assert.equal(
      exitNotice({ code: 1, lastLines: '' }),
      'The local container exited with code 1; ending the session.',
    );
  });
});
