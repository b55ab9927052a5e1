/**
 * The console with a fleet (Chromium through playwright-core, as test/console-browser.test.ts): 130 devices
 * registered straight into the registry; the device list is searched, filtered, sorted and paged, every view is
 * a route of its own, and times older than today carry their date.
 */
import { generateRsaKeyPair } from '../hosts/node/crypto.js';
import { idToHex } from '../hosts/node/durable.js';
import { findMosquitto } from './support/mosquitto.js';
import { browserAvailable, openBrowser, startStack, type Stack } from './support/browser.js';

const run = findMosquitto() !== null && browserAvailable();
const describeIf = run ? describe : describe.skip;

const FLEET = 130;
const KINDS = ['pump', 'valve', 'meter'];
const DAY = 86400000;

describeIf('operator console with a fleet', () => {
  let stack: Stack;
  let b: Awaited<ReturnType<typeof openBrowser>>;
  const ids: string[] = [];

  beforeAll(async () => {
    stack = await startStack({ devices: 0 });
    const { app } = stack;
    const key = generateRsaKeyPair(2048).publicKey;
    const now = Date.now();
    app.registry.transaction(() => {
      for (let i = 0; i < FLEET; i++) {
        const id = 0x7000000000000000n + BigInt(i) * 4099n;
        ids.push(idToHex(id));
        app.registry.addDevice(id, key, now);
        // Every tenth device is pending; the first was last heard from three days ago, the others today.
        app.registry.updateDevice(id, {
          state: i % 10 === 9 ? 'pending' : 'joined',
          firmwareName: 'srup-sensor',
          firmwareVersion: i % 2 === 0 ? '1.0.0' : '2.0.0',
          lastSeen: i === 0 ? now - 3 * DAY : now - i * 1000,
        }, now);
        app.store.setDeviceSettings(id, { palette: 'default', label: `${KINDS[i % 3]} ${String(i).padStart(3, '0')}` });
      }
    });
    b = await openBrowser();
    const { page } = b;
    await page.setViewportSize({ width: 1366, height: 768 });
    await page.goto(app.url + '/');
    await page.fill('#token', app.operatorToken as string);
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector('#main:not([hidden])');
  }, 60000);

  afterAll(async () => {
    await b?.close();
    await stack?.stop();
  });

  const rowIds = () => b.page.$$eval('#devices tbody tr', (rows) => rows.map((r) => (r as unknown as { dataset: { id: string } }).dataset.id));
  const labels = () => b.page.$$eval('#devices tbody td.label', (cells) => cells.map((c) => c.textContent));

  test('paging: 50 a page, next and last, the page in the address', async () => {
    const { page } = b;
    await page.waitForSelector('#devices-count:text("(130 devices)")');
    expect(await rowIds()).toEqual([...ids].sort().slice(0, 50));
    expect(await page.textContent('#devices-pager .where')).toBe('page 1 of 3 · 1–50 of 130');
    expect(await page.isDisabled('#devices-pager .prev')).toBe(true);
    await page.click('#devices-pager .next');
    await page.waitForSelector('#devices-pager .page:text-is("2")');
    expect(await rowIds()).toEqual([...ids].sort().slice(50, 100));
    expect(page.url()).toMatch(/#\/devices\?.*page=2/);
    await page.click('#devices-pager .last');
    await page.waitForSelector('#devices-pager .where:text("101–130 of 130")');
    expect(await rowIds()).toEqual([...ids].sort().slice(100));
    expect(await page.isDisabled('#devices-pager .next')).toBe(true);
    // A smaller page size: 25 a page, back on page 1.
    await page.selectOption('#device-filter select[name=pageSize]', '25');
    await page.waitForSelector('#devices-pager .where:text("page 1 of 6 · 1–25 of 130")');
    expect(await rowIds()).toHaveLength(25);
  });

  test('search by label, by id and by firmware; filter by state; sort by a column', async () => {
    const { page } = b;
    await page.fill('#device-filter input[name=search]', 'valve');
    await page.waitForSelector('#devices-count:text("(43 devices)")');
    expect((await labels()).every((l) => l?.startsWith('valve '))).toBe(true);
    expect(await page.textContent('#devices-pager .where')).toBe('page 1 of 2 · 1–25 of 43');
    // An id (any part of its hex digits) finds that one device.
    await page.fill('#device-filter input[name=search]', ids[77].slice(10));
    await page.waitForSelector('#devices-count:text("(1 device)")');
    expect(await rowIds()).toEqual([ids[77]]);
    await page.fill('#device-filter input[name=search]', 'no such device');
    await page.waitForSelector('#devices tbody td:text("No device matches.")');
    await page.fill('#device-filter input[name=search]', '2.0.0');
    await page.waitForSelector('#devices-count:text("(65 devices)")');
    await page.selectOption('#device-filter select[name=state]', 'pending');
    await page.waitForSelector('#devices-count:text("(13 devices)")');
    expect(await page.$$eval('#devices tbody tr', (rows) => rows.map((r) => (r as unknown as { dataset: { state: string } }).dataset.state))).toEqual(Array(13).fill('pending'));
    // The filter lives in the address: a reload shows the same list, with the controls filled in.
    await page.reload();
    await page.waitForSelector('#devices-count:text("(13 devices)")');
    expect(await page.inputValue('#device-filter input[name=search]')).toBe('2.0.0');
    expect(await page.inputValue('#device-filter select[name=state]')).toBe('pending');
    await page.click('#filter-clear');
    await page.waitForSelector('#devices-count:text("(130 devices)")');
    // Sort by label, then the other way.
    await page.click('#devices th button.sort[data-sort="label"]');
    await page.waitForSelector('#devices th[aria-sort="ascending"] button[data-sort="label"]');
    expect((await labels())[0]).toBe('meter 002');
    await page.click('#devices th button.sort[data-sort="label"]');
    await page.waitForSelector('#devices th[aria-sort="descending"] button[data-sort="label"]');
    expect((await labels())[0]).toBe('valve 127');
  });

  test('times older than today carry their date; today\'s show how long ago', async () => {
    const { page } = b;
    await page.goto(stack.app.url + `/#/devices?search=${ids[0]}`);
    await page.waitForSelector('#devices-count:text("(1 device)")');
    const old = new Date(Date.now() - 3 * DAY);
    const date = `${old.getFullYear()}-${String(old.getMonth() + 1).padStart(2, '0')}-${String(old.getDate()).padStart(2, '0')}`;
    expect(await page.textContent(`#devices tr[data-id="${ids[0]}"] td.seen`)).toMatch(new RegExp(`^3 d ago · ${date} \\d\\d:\\d\\d$`));
    await page.goto(stack.app.url + `/#/devices?search=${ids[5]}`);
    await page.waitForSelector(`#devices tr[data-id="${ids[5]}"]`);
    expect(await page.textContent(`#devices tr[data-id="${ids[5]}"] td.seen`)).toMatch(/^\d+ s ago$/);
  });

  test('views are routes: tabs, the back button and a device\'s own address', async () => {
    const { page } = b;
    await page.goto(stack.app.url + '/#/devices');
    await page.waitForSelector('#view-devices:not([hidden])');
    for (const v of ['joins', 'campaigns', 'images', 'audit', 'operators']) {
      await page.click(`#tabs a[data-view="${v}"]`);
      await page.waitForSelector(`#view-${v}:not([hidden])`);
      expect(await page.getAttribute(`#tabs a[data-view="${v}"]`, 'aria-current')).toBe('page');
      expect(await page.locator('main > section.view:not([hidden])').count()).toBe(1);
    }
    await page.goBack();
    await page.waitForSelector('#view-audit:not([hidden])');
    await page.goto(stack.app.url + `/#/devices/${ids[3]}`);
    await page.waitForSelector(`#dp-id:text("${ids[3]}")`);
    expect(await page.inputValue('#dp-meta input[name=label]')).toBe('pump 003');
    await page.click('#dp-close');
    await page.waitForSelector('#view-devices:not([hidden])');
  });

  test('a phone-width screen: the list keeps id, label, state and last seen without sideways scrolling', async () => {
    const { page } = b;
    await page.setViewportSize({ width: 390, height: 844 });
    try {
      await page.goto(stack.app.url + '/#/devices');
      await page.waitForSelector('#devices tbody tr');
      const fits = await page.evaluate(() => {
        const d = (globalThis as unknown as { document: { documentElement: { scrollWidth: number; clientWidth: number }; querySelector(s: string): { getBoundingClientRect(): { right: number } } } }).document;
        return { page: d.documentElement.scrollWidth <= d.documentElement.clientWidth, table: d.querySelector('#devices').getBoundingClientRect().right <= 390 };
      });
      expect(fits).toEqual({ page: true, table: true });
      expect(await page.isVisible(`#devices tr[data-id="${ids[0]}"] td.id .sub:text("pump 000")`)).toBe(true);
      expect(await page.isVisible(`#devices tr[data-id="${ids[0]}"] td.seen`)).toBe(true);
      expect(await page.isVisible(`#devices tr[data-id="${ids[0]}"] td.c-response`)).toBe(false);
    } finally {
      await page.setViewportSize({ width: 1366, height: 768 });
    }
  });
});
