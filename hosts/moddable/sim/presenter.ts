/**
 * The challenge in the simulator: the 8×8 grid on the 240×320 screen (Poco), and the blink on the mock-up's
 * LED (`Host.LED.Default`, present on `-p sim/<device>` builds) when there is one.
 */
import Poco from 'commodetto/Poco';
import type { Presenter } from '../../../modules/agent/host.js';
import type { PresenterSettings } from '../../../modules/store/record.js';
import { ChallengePresenter } from '../presenter-common.js';

interface HostLed {
  write(value: number): void;
}

export function makePresenter(_s: PresenterSettings, log: (line: string) => void): Presenter {
  const host = (globalThis as unknown as { Host?: { LED?: { Default?: new (o?: object) => HostLed } } }).Host;
  const Led = host?.LED?.Default;
  const ledDevice = Led ? new Led() : null;
  const led = ledDevice ? (on: boolean) => ledDevice.write(on ? 1 : 0) : null;
  const scr = (globalThis as unknown as { screen?: unknown }).screen;
  let grid: ((rgb: Uint8Array | null) => void) | null = null;
  if (scr) {
    const poco = new Poco(scr as never);
    const cell = 28;
    const x0 = (poco.width - 8 * cell) >> 1;
    const y0 = (poco.height - 8 * cell) >> 1;
    grid = (rgb) => {
      poco.begin();
      poco.fillRectangle(poco.makeColor(0, 0, 0), 0, 0, poco.width, poco.height);
      if (rgb !== null)
        for (let i = 0; i < 64; i++)
          poco.fillRectangle(poco.makeColor(rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]), x0 + (i % 8) * cell + 1, y0 + ((i / 8) | 0) * cell + 1, cell - 2, cell - 2);
      poco.end();
    };
  }
  return new ChallengePresenter({ led, grid, log });
}
