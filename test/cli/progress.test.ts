import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createProgress, type ProgressStream } from '../../src/cli/progress.ts';

function fakeStream(isTTY: boolean, columns = 80): ProgressStream & { output: string } {
  return {
    isTTY,
    columns,
    output: '',
    write(text: string) {
      this.output += text;
      return true;
    },
  };
}

const CLEAR = '\x1b[2K\x1b[1G';

describe('createProgress', () => {
  it('writes plain lines when the stream is not a TTY', () => {
    const stream = fakeStream(false);
    const progress = createProgress({ stream });
    progress.step('creating dev PKI');
    progress.step('starting gateway');
    progress.done('ready');
    assert.equal(stream.output, 'creating dev PKI\nstarting gateway\nready\n');
  });

  it('rewrites one line on a TTY and clears it when done', () => {
    const stream = fakeStream(true);
    const progress = createProgress({ stream, intervalMs: 0 });
    progress.step('one');
    progress.step('two');
    progress.done();
    assert.equal(stream.output, `${CLEAR}one${CLEAR}two${CLEAR}`);
    assert.ok(!stream.output.includes('\n'));
  });

  it('throttles TTY redraws and shows the latest message', async () => {
    const stream = fakeStream(true);
    const progress = createProgress({ stream, intervalMs: 40 });
    progress.step('a');
    progress.step('b');
    progress.step('c');
    assert.equal(stream.output, `${CLEAR}a`);
    await new Promise((resolve) => setTimeout(resolve, 80));
    assert.equal(stream.output, `${CLEAR}a${CLEAR}c`);
    progress.done('finished');
    assert.equal(stream.output, `${CLEAR}a${CLEAR}c${CLEAR}finished\n`);
  });

  it('drops a pending redraw on done', async () => {
    const stream = fakeStream(true);
    const progress = createProgress({ stream, intervalMs: 40 });
    progress.step('a');
    progress.step('b');
    progress.done();
    await new Promise((resolve) => setTimeout(resolve, 80));
    assert.equal(stream.output, `${CLEAR}a${CLEAR}`);
  });

  it('cuts a line wider than the terminal so it never wraps', () => {
    const stream = fakeStream(true, 10);
    createProgress({ stream, intervalMs: 0 }).step('0123456789abcdef');
    assert.equal(stream.output, `${CLEAR}01234567…`);
  });

  it('assumes 80 columns when the terminal reports none', () => {
    const stream = fakeStream(true, 0);
    createProgress({ stream, intervalMs: 0 }).step('starting gateway');
    assert.equal(stream.output, `${CLEAR}starting gateway`);
  });

  it('writes nothing when quiet', () => {
    const stream = fakeStream(true);
    const progress = createProgress({ stream, quiet: true });
    progress.step('x');
    progress.done('y');
    assert.equal(stream.output, '');
  });
});
