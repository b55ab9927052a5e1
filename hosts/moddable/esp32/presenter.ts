/**
 * The challenge on the board: an LED on a GPIO (active-high or active-low) and/or an 8×8 WS2812 matrix
 * (wiring, rotation and brightness cap from the key-store record; the index mapping is modules/matrix). The
 * cap is applied here, once: the driver's own brightness is set to full.
 */
import Digital from 'pins/digital';
import NeoPixel from 'neopixel';
import type { Presenter } from '../../../modules/agent/host.js';
import { capBrightness, pixelMap } from '../../../modules/matrix/layout.js';
import type { PresenterSettings } from '../../../modules/store/record.js';
import { ChallengePresenter } from '../presenter-common.js';

/** The NeoPixel driver's own brightness: full (255, the most it takes). */
export const DRIVER_BRIGHTNESS = 255;

export function makePresenter(s: PresenterSettings, log: (line: string) => void): Presenter {
  let led: ((on: boolean) => void) | null = null;
  if (s.ledPin !== null) {
    const pin = s.ledPin;
    led = (on) => Digital.write(pin, on !== s.ledActiveLow ? 1 : 0);
    led(false);
  }
  let grid: ((rgb: Uint8Array | null) => void) | null = null;
  if (s.matrixPin !== null) {
    const strip = new NeoPixel({ length: 64, pin: s.matrixPin, order: 'GRB' });
    // The driver scales every byte by its own brightness when it draws ((v * brightness) >> 8, default 64, which
    // on top of the cap gave the LEDs a quarter of it). At 255, its maximum, a byte v reaches the LEDs as
    // (v * 255) >> 8, one step below v at most: the record's cap is the only limit.
    strip.brightness = DRIVER_BRIGHTNESS;
    const map = pixelMap({ size: 8, wiring: s.matrixLayout, rotation: s.matrixRotation });
    grid = (rgb) => {
      if (rgb === null) strip.fill(0);
      else
        for (let cell = 0; cell < 64; cell++) {
          const [r, g, b] = capBrightness([rgb[3 * cell], rgb[3 * cell + 1], rgb[3 * cell + 2]], s.brightnessCap);
          strip.setPixel(map[cell], strip.makeRGB(r, g, b));
        }
      strip.update();
    };
    grid(null);
  }
  return new ChallengePresenter({ led, grid, log });
}
