/**
 * The operator console in Chromium with hostile text in every place a device (or an operator) can put some:
 * labels, identification and firmware names, campaign names and URLs. All of it must show as text; none of it
 * may become markup.
 */
import fs from 'node:fs';
import path from 'node:path';
import { idToHex } from '../hosts/node/durable.js';
import { MAX_IMAGE_BYTES } from '../tools/c2/campaigns.js';
import { findMosquitto } from './support/mosquitto.js';
import { browserAvailable, login, openBrowser, request, startStack, type Stack } from './support/browser.js';

const run = findMosquitto() !== null && browserAvailable();
const describeIf = run ? describe : describe.skip;

const EVIL = `<img src=x id=pwn onerror="document.title='pwned'"><b id=bold>"'&amp;`;

describeIf('console escapes device and operator text', () => {
  let stack: Stack;
  let b: Awaited<ReturnType<typeof openBrowser>>;

  beforeAll(async () => {
    stack = await startStack({ devices: 2 });
    b = await openBrowser();
  }, 60000);

  afterAll(async () => {
    await b?.close();
    await stack?.stop();
  });

  test('labels, ID texts, firmware names, campaign names and URLs are shown as text', async () => {
    const { app } = stack;
    const [pending, joined] = stack.devices.map((d) => d.id);
    const now = Date.now();
    app.store.setDeviceSettings(pending, { palette: 'default', label: EVIL });
    app.registry.updateDevice(pending, { state: 'pending', joinKind: 'observed', observerId: joined }, now);
    app.store.setDeviceSettings(joined, { palette: 'default', label: EVIL });
    app.registry.updateDevice(joined, { state: 'joined', joinKind: 'simple', identification: EVIL + ' 1.0', firmwareName: EVIL, firmwareVersion: '1.0' }, now);
    const s = await login(app.url, app.operatorToken as string);
    const c = await request(app.url, 'POST', '/api/campaigns', {
      headers: { Origin: app.url, Cookie: s.cookie, 'X-CSRF-Token': s.csrf },
      json: { name: EVIL, url: `http://127.0.0.1:1/${EVIL}`, digest: 'a'.repeat(64), devices: [idToHex(joined)] },
    });
    expect(c.status).toBe(200);

    const { page } = b;
    await page.goto(app.url + '/');
    await page.fill('#token', app.operatorToken as string);
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector(`#devices tr[data-id="${idToHex(joined)}"]`);
    // Searching for the hostile text finds the device and keeps it text.
    await page.fill('#device-filter input[name=search]', '<img src=x');
    await page.waitForURL(/search=%3Cimg/);
    await page.waitForSelector('#devices-count:text("(2 devices)")');
    expect(await page.textContent(`#devices tr[data-id="${idToHex(joined)}"]`)).toContain(EVIL);
    await page.goto(app.url + '/#/joins');
    await page.waitForSelector(`.join[data-id="${idToHex(pending)}"]`);
    expect(await page.textContent(`.join[data-id="${idToHex(pending)}"]`)).toContain(EVIL);
    await page.goto(app.url + '/#/campaigns');
    await page.waitForSelector('#campaign-list tr[data-id="1"]');
    expect(await page.textContent('#campaign-list tr[data-id="1"] td.name')).toBe(EVIL);
    await page.goto(app.url + '/#/campaigns/1');
    await page.waitForSelector('.campaign');
    await page.goto(app.url + `/#/devices/${idToHex(joined)}`);
    await page.waitForSelector('#dp-info dd');
    await page.waitForTimeout(300);

    expect(await page.$$('#pwn, #bold')).toHaveLength(0);
    expect(await page.title()).not.toBe('pwned');
    expect(await page.textContent('#dp-info')).toContain(EVIL + ' 1.0');
    expect(await page.inputValue('#dp-meta input[name=label]')).toBe(EVIL);
    await page.goto(app.url + '/#/campaigns/1');
    await page.waitForSelector('.campaign');
    expect(await page.$$('#pwn, #bold')).toHaveLength(0);
    expect(await page.textContent('.campaign h3')).toContain(EVIL);
    expect(await page.textContent('.campaign')).toContain(`http://127.0.0.1:1/${EVIL}`);
  }, 60000);

  test('an image larger than the server takes: the page says so', async () => {
    const { page } = b;
    const joined = idToHex(stack.devices[1].id);
    const file = path.join(stack.dir, 'huge.bin');
    fs.closeSync(fs.openSync(file, 'w'));
    fs.truncateSync(file, MAX_IMAGE_BYTES + 1);
    try {
      await page.goto(stack.app.url + '/#/devices');
      await page.click(`#devices tr[data-id="${joined}"] .pick`);
      await page.click('#selection-campaign');
      await page.setInputFiles('#campaign-form input[name=file]', file);
      await page.click('#campaign-form button[type=submit]');
      // The answer shows next to the form that asked.
      await page.waitForSelector('#campaign-form output.error:text("too large")', { timeout: 30000 });
      expect(await page.textContent('#campaign-form output')).toMatch(/^campaign: the image is too large/);
    } finally {
      fs.rmSync(file, { force: true });
    }
  }, 60000);
});
