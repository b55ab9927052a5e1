/**
 * The console with a fleet (Chromium through playwright-core, as test/console-browser.test.ts): 130 devices
 * registered straight into the registry; the device list is searched, filtered, sorted and paged, every view is
 * a route of its own, and times older than today carry their date.
 */
import { generateRsaKeyPair } from '../hosts/node/crypto.js';
import { idToHex } from '../hosts/node/durable.js';
import { DEVICE_STATES } from '../hosts/node/sql-registry.js';
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
    // The state filter offers every state the registry knows, and nothing else.
    const offered = await page.$$eval('#device-filter select[name=state] option', (os) => os.map((o) => (o as unknown as { value: string }).value));
    expect(offered[0]).toBe('');
    expect(offered.slice(1).sort()).toEqual([...DEVICE_STATES].sort());
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

  test('a campaign page shows the waves, failures by status code and the devices that rolled back, as the server reports them', async () => {
    const { page } = b;
    const t = (device: string, wave: number, state: string, status: number | null, extra: Record<string, unknown> = {}) =>
      ({ device, wave, state, status, failure: null, error: null, token: null, activate: true, rolledBack: false, updatedAt: Date.now(), ...extra });
    const view = {
      id: 7, name: 'valves to 2.1', url: 'http://127.0.0.1:1/images/x.bin', digest: 'ab'.repeat(32), size: 2048, file: null, autoActivate: true,
      createdAt: Date.now() - 2 * DAY, updatedAt: Date.now(), createdBy: 'alice',
      state: 'waiting', reason: 'the first wave failed on 4 of 5 devices (80%), above the limit of 10%: waiting for the operator\'s go',
      currentWave: 0, plan: { first: { count: 5 }, then: 'auto', maxFailureRate: 0.1 }, image: 3,
      waves: [{ index: 0, size: 5, sent: 5, done: 1, failed: 4 }, { index: 1, size: 2, sent: 0, done: 0, failed: 0 }],
      failures: { '0xfe': 2, '0x1f': 1, initiate_timeout: 1 },
      counts: { confirmed: 1, failed: 4, not_sent: 2 }, done: 1,
      targets: [
        t(ids[0], 0, 'confirmed', 0x10), t(ids[1], 0, 'failed', 0xfe), t(ids[2], 0, 'failed', 0xfe),
        t(ids[3], 0, 'failed', 0x1f, { rolledBack: true }), t(ids[4], 0, 'failed', null, { failure: 'initiate_timeout' }),
        t(ids[5], 1, 'not_sent', null), t(ids[6], 1, 'not_sent', null),
      ],
    };
    await page.route('**/api/campaigns/7', (route) => route.fulfill({ json: view }));
    try {
      await page.goto(stack.app.url + '/#/campaigns/7');
      const card = page.locator('.campaign[data-id="7"]');
      await card.waitFor();
      expect(await card.getAttribute('data-state')).toBe('waiting');
      expect(await card.locator('.reason').textContent()).toBe(view.reason);
      expect(await card.locator('.muted >> nth=0').textContent()).toContain(`created ${new Date(view.createdAt).getFullYear()}-`);
      expect(await card.locator('.muted >> nth=0').textContent()).toContain('by alice');
      // Waiting: the go, pause and cancel are offered; resume is not.
      expect(await card.locator('.controls button').allTextContents()).toEqual(['Pause', 'Start the next wave', 'Cancel', 'Activate all ready (0)']);
      expect(await card.locator('table.waves tbody tr').evaluateAll((rows) => rows.map((r) => (r as unknown as { textContent: string }).textContent))).toEqual(['15514', '22000']);
      expect(await card.locator('table.failures tbody tr').evaluateAll((rows) => rows.map((r) => [...(r as unknown as { cells: { textContent: string }[] }).cells].map((c) => c.textContent)))).toEqual([
        ['0xFE file error', '2'], ['0x1F activation failed', '1'], ['initiate timeout', '1'],
      ]);
      expect(await card.locator('.pill.rollback').first().textContent()).toBe('1 rolled back');
      expect(await card.locator(`tr[data-device="${ids[3]}"] .pill.rollback`).textContent()).toBe('rolled back');
      expect(await card.locator(`tr[data-device="${ids[3]}"] td.wave`).textContent()).toBe('1');
      expect(await card.locator(`tr[data-device="${ids[5]}"] td.wave`).textContent()).toBe('2');
      // Only the rolled-back devices.
      await card.locator('select.target-filter').selectOption('rolledBack');
      await page.waitForSelector('.campaign table.targets tbody tr >> nth=0');
      expect(await page.$$eval('.campaign table.targets tbody tr', (rows) => rows.map((r) => (r as unknown as { dataset: { device: string } }).dataset.device))).toEqual([ids[3]]);
    } finally {
      await page.unroute('**/api/campaigns/7');
    }
  });
});
