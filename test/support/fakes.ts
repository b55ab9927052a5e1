/**
 * The fakes of test/portable/fakes.ts (they run on any engine; see the list there), and what only Node has:
 *
 *   realClock          the Node timers
 */
import type { Clock } from '../../modules/agent/host.js';

export {
  ChallengeRecorder,
  CollectingLog,
  FakeDownloader,
  FakeUpdater,
  ManualClock,
  RecordingPresenter,
  fakeHost,
  seededRandom,
  type FakeHostParts,
  type LogLine,
  type ServeOptions,
  type Shown,
} from '../portable/fakes.js';

export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};
