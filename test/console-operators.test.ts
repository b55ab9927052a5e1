/**
 * Named operators, device labels and tags, online state, removal and the audit from the console in Chromium,
 * against the whole stack: the admin adds operators, one of them logs in with her password, edits a device,
 * acts on it and removes another, and the audit view finds what she did by her name (and exports it as CSV).
 */
import { idToHex } from '../hosts/node/durable.js';
import { findMosquitto } from './support/mosquitto.js';
import { browserAvailable, openBrowser, startStack, type Stack } from './support/browser.js';

const run = findMosquitto() !== null && browserAvailable();
const describeIf = run ? describe : describe.skip;

describeIf('operators, tags, removal and the audit in the console', () => {
  let stack: Stack;
  let b: Awaited<ReturnType<typeof openBrowser>>;
  let ids: string[];

  beforeAll(async () => {
    stack = await startStack({ devices: 3 });
    await Promise.all(stack.devices.map((d) => d.join('simple')));
    ids = stack.devices.map((d) => idToHex(d.id));
    b = await openBrowser();
  }, 60000);

  afterAll(async () => {
    await b?.close();
    await stack?.stop();
  });

  const loginAs = async (operator: string, secret: string) => {
    const { page } = b;
    await page.goto(stack.app.url + '/');
    await page.waitForSelector('#login:not([hidden])');
    await page.fill('#login-operator', operator);
    await page.fill('#token', secret);
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector('#main:not([hidden])');
  };

  test('the admin adds an operator with a password and one with a token; admin cannot be removed', async () => {
    await loginAs('', stack.app.operatorToken as string);
    const { page } = b;
    await page.waitForSelector('#operator:text("operator admin")');
    await page.click('#tabs a[data-view="operators"]');
    await page.waitForSelector('#operators tr[data-name="admin"]');
    expect(await page.locator('#operators tr[data-name="admin"] button.remove').count()).toBe(0);
    await page.fill('#operator-form input[name=name]', 'alice');
    await page.fill('#operator-form input[name=password]', 'correct horse battery');
    await page.click('#operator-form button[type=submit]');
    await page.waitForSelector('#operator-form output.ok:text("operator alice added")');
    await page.waitForSelector('#operators tr[data-name="alice"]');
    expect(await page.textContent('#operators tr[data-name="alice"] td:nth-child(2)')).toBe('password');
    await page.fill('#operator-form input[name=name]', 'bob');
    await page.click('#operator-form button[type=submit]');
    await page.waitForSelector('#operator-form output.ok:text("their token (shown only now)")');
    await page.waitForSelector('#operators tr[data-name="bob"]');
    // A name the server refuses: the reason shows by the form, nothing is added.
    await page.fill('#operator-form input[name=name]', 'Not A Name!');
    await page.click('#operator-form button[type=submit]');
    await page.waitForSelector('#operator-form output.error');
    expect(await page.locator('#operators tbody tr').count()).toBe(3);
    await page.click('#logout');
    await page.waitForSelector('#login:not([hidden])');
  });

  test('a wrong password is refused; alice logs in and her name is in the header', async () => {
    const { page } = b;
    await page.fill('#login-operator', 'alice');
    await page.fill('#token', 'wrong horse');
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector('#login-error:text("Wrong operator or password.")');
    await loginAs('alice', 'correct horse battery');
    await page.waitForSelector('#operator:text("operator alice")');
  });

  test('online state, label and tags: edited on the device page, then found by the tag filter', async () => {
    const { page } = b;
    await page.goto(stack.app.url + '/#/devices');
    await page.waitForSelector(`#devices tr[data-id="${ids[0]}"][data-online="true"]`);
    expect(await page.textContent(`#devices tr[data-id="${ids[0]}"] td.c-online`)).toBe('online');
    await page.selectOption('#device-filter select[name=online]', 'false');
    await page.waitForSelector('#devices tbody td:text("No device matches.")');
    await page.selectOption('#device-filter select[name=online]', 'true');
    await page.waitForSelector('#devices-count:text("(3 devices)")');
    await page.click(`#devices tr[data-id="${ids[0]}"] a.open`);
    await page.waitForSelector(`#dp-id:text("${ids[0]}")`);
    await page.waitForSelector('#dp-online .pill.up:text("online")');
    await page.fill('#dp-meta input[name=label]', 'greenhouse pump');
    await page.fill('#dp-meta input[name=tags]', 'greenhouse site:b');
    await page.click('#dp-meta button');
    await page.waitForSelector('#dp-meta output.ok:text("saved: label \\"greenhouse pump\\", tags greenhouse site:b")');
    // A tag the server refuses: the reason shows by the form.
    await page.fill('#dp-meta input[name=tags]', 'no spaces allowed?');
    await page.click('#dp-meta button');
    await page.waitForSelector('#dp-meta output.error');
    await page.goto(stack.app.url + '/#/devices?tag=greenhouse');
    await page.waitForSelector('#devices-count:text("(1 device)")');
    expect(await page.textContent(`#devices tr[data-id="${ids[0]}"] td.c-tags`)).toBe('greenhouse site:b');
    expect(await page.textContent(`#devices tr[data-id="${ids[0]}"] td.label`)).toBe('greenhouse pump');
    await page.click(`#devices tr[data-id="${ids[0]}"] a.tag:text("site:b")`);
    await page.waitForURL(/tag=site%3Ab/);
    await page.waitForSelector('#devices-count:text("(1 device)")');
  });

  test('an action, then removing a device asks first and keeps its counters', async () => {
    const { page } = b;
    await page.goto(stack.app.url + `/#/devices/${ids[0]}`);
    await page.fill('#dp-action input[name=actionId]', '1');
    await page.click('#dp-action button');
    await page.waitForSelector('#dp-action output.ok:text("action 1: 0x20 action done")');
    const seq = stack.app.registry.sequence(stack.devices[2].id);
    await page.goto(stack.app.url + `/#/devices/${ids[2]}`);
    await page.waitForSelector(`#dp-id:text("${ids[2]}")`);
    page.once('dialog', (d) => void d.dismiss());
    await page.click('#dp-remove');
    await page.waitForTimeout(300);
    expect(stack.app.registry.device(stack.devices[2].id)).not.toBeNull();
    page.once('dialog', (d) => void d.accept());
    await page.click('#dp-remove');
    await page.waitForSelector('#view-devices:not([hidden])');
    await page.waitForSelector(`#flash:text("device ${ids[2]} removed from the registry")`);
    await page.waitForSelector('#devices-count:text("(2 devices)")');
    expect(stack.app.registry.device(stack.devices[2].id)).toBeNull();
    expect(stack.app.registry.sequence(stack.devices[2].id)).toEqual(seq);
  });

  test('the audit finds what alice did by her name, and exports it as CSV', async () => {
    const { page } = b;
    await page.click('#tabs a[data-view="audit"]');
    await page.waitForSelector('#audit tbody tr');
    await page.fill('#audit-filter input[name=operator]', 'alice');
    await page.waitForURL(/#\/audit\?operator=alice/);
    await page.waitForSelector('#audit tbody tr td.operator');
    const rows = await page.$$eval('#audit tbody tr', (trs) => trs.map((tr) => [...(tr as unknown as { cells: { textContent: string }[] }).cells].map((c) => c.textContent)));
    expect(rows.every((r) => r[5] === 'alice')).toBe(true);
    const types = rows.map((r) => r[4]);
    for (const t of ['login', 'meta', 'action', 'remove']) expect(types).toContain(t);
    expect(rows.find((r) => r[4] === 'remove')?.[3]).toBe(ids[2]);
    // The admin's actions are not in alice's audit; the admin filter finds them.
    expect(rows.some((r) => /operator bob|bob added/.test(r[6] ?? ''))).toBe(false);
    const href = await page.getAttribute('#audit-csv', 'href');
    expect(href).toMatch(/^\/api\/audit\.csv\?operator=alice$/);
    const csv = await page.evaluate(async (h) => (await fetch(h as string, { credentials: 'same-origin' })).text(), href);
    const lines = csv.trim().split(/\r?\n/);
    expect(lines.length).toBe(rows.length + 1);
    expect(lines.slice(1).every((l) => l.includes('alice'))).toBe(true);
    // Filtered by device too: only the removed device's entries.
    await page.fill('#audit-filter input[name=device]', ids[2]);
    await page.waitForURL(new RegExp(`device=${ids[2]}`));
    await page.waitForSelector('#audit-count:text("(1)")');
    expect(await page.textContent('#audit tbody tr td.summary')).toBe('removed from the registry');
  });
});
