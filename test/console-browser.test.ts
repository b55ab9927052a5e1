/**
 * The operator console in a real browser (Debian's Chromium through playwright-core), against the whole stack:
 * log in, read the join challenge off the page and compare it with what the device's presenter shows, approve,
 * then run an update campaign on three devices where one download is corrupted, and watch a device's readings
 * arrive on its panel.
 */
import fs from 'node:fs';
import path from 'node:path';
import { DEFAULT_PALETTE } from '../modules/challenge/index.js';
import { idToHex } from '../hosts/node/durable.js';
import { demoImage } from '../tools/c2/virtual.js';
import { findMosquitto } from './support/mosquitto.js';
import { browserAvailable, openBrowser, startStack, until, type Stack } from './support/browser.js';

/** The few DOM members the page callbacks use (the project compiles without the DOM library). */
interface DomEl {
  dataset: Record<string, string | undefined>;
  classList: { contains(c: string): boolean };
}

const run = findMosquitto() !== null && browserAvailable();
const describeIf = run ? describe : describe.skip;

describeIf('operator console in Chromium', () => {
  let stack: Stack;
  let b: Awaited<ReturnType<typeof openBrowser>>;

  beforeAll(async () => {
    stack = await startStack({ devices: 3, corrupt: [2] });
    b = await openBrowser();
  }, 60000);

  afterAll(async () => {
    await b?.close();
    await stack?.stop();
  });

  test('login: a wrong token is refused, the right one opens the console', async () => {
    const { page } = b;
    await page.goto(stack.app.url + '/');
    await page.waitForSelector('#login:not([hidden])');
    await page.fill('#token', 'not-the-token');
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector('#login-error:text("Wrong token.")');
    await page.fill('#token', stack.app.operatorToken as string);
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector('#main:not([hidden])');
    await page.waitForSelector('#devices tbody tr >> nth=2');
    const ids = await page.$$eval('#devices tbody tr', (rows) => rows.map((r) => (r as unknown as DomEl).dataset.id));
    expect(ids).toEqual(stack.devices.map((d) => idToHex(d.id)).sort());
    expect(await page.textContent('#broker')).toBe('broker connected');
    // A reload keeps the session (cookie) and fetches a CSRF token again.
    await page.reload();
    await page.waitForSelector('#main:not([hidden])');
  });

  test('a human-moderated join: the grid on the page is the grid the device shows; approving joins it', async () => {
    const { page } = b;
    const device = stack.devices[0];
    const id = idToHex(device.id);
    const outcome = device.join('human');
    const shown = await until('the device shows a challenge', () => device.presenter.current);
    // Live: the card appears without a reload, and the Joins tab counts it.
    await page.locator('#joins-badge:text("1")').waitFor();
    await page.click('#tabs a[data-view="joins"]');
    const card = page.locator(`.join[data-id="${id}"]`);
    await card.locator('.grid .cell >> nth=63').waitFor();
    const cells = await card.locator('.grid .cell').evaluateAll((els) =>
      els.map((e) => ({ colour: Number((e as unknown as DomEl).dataset.colour), rgb: (globalThis as unknown as { getComputedStyle(x: unknown): { backgroundColor: string } }).getComputedStyle(e).backgroundColor })));
    expect(cells).toHaveLength(64);
    expect(cells.map((c) => c.colour)).toEqual(shown.grid);
    expect(cells.map((c) => c.rgb)).toEqual(shown.grid.map((i) => `rgb(${DEFAULT_PALETTE.colours[i].rgb.join(', ')})`));
    expect(await card.locator('.digits').getAttribute('data-blink')).toBe(shown.blink);
    expect((await card.locator('.digits').textContent())?.replace(/ /g, '')).toBe(shown.blink);
    // The dot blinks: sampled over two seconds it is seen both lit and dark.
    const seen = new Set<boolean>();
    for (let i = 0; i < 40 && seen.size < 2; i++) {
      seen.add(await card.locator('.led').evaluate((e) => e.classList.contains('on')));
      await page.waitForTimeout(50);
    }
    expect([...seen].sort()).toEqual([false, true]);

    await card.locator('button.approve').click();
    expect(await outcome).toBe('joined');
    await page.locator(`.join[data-id="${id}"]`).waitFor({ state: 'detached' });
    expect(await page.locator('#joins-badge').isHidden()).toBe(true);
    await page.click('#tabs a[data-view="devices"]');
    await page.locator(`#devices tr[data-id="${id}"][data-state="joined"]`).waitFor();
  });

  test('an update campaign to three devices with one corrupted download: 0x00 / 0xFF, then 0x10 confirmations', async () => {
    const { page } = b;
    await Promise.all([stack.devices[1].join('simple'), stack.devices[2].join('simple')]);
    await page.locator('#devices tr[data-state="joined"] >> nth=2').waitFor();
    await page.check('#select-all');
    expect(await page.textContent('#selected-count')).toBe('3');
    await page.click('#selection-campaign');
    await page.waitForSelector('#view-campaigns:not([hidden])');
    expect(await page.textContent('#campaign-selected')).toBe('3');
    const img = path.join(stack.dir, 'firmware-1.1.0.bin');
    fs.writeFileSync(img, demoImage('srup-virtual', '1.1.0', 200 * 1024));
    await page.setInputFiles('#campaign-form input[name=file]', img);
    await page.click('#campaign-form button[type=submit]');
    // The new campaign opens on its own page.
    await page.waitForURL(/#\/campaigns\/1$/);
    const campaign = page.locator('.campaign >> nth=0');
    await campaign.waitFor();
    expect(await campaign.locator('h3').textContent()).toBe('#1 firmware-1.1.0.bin');
    const ids = stack.devices.map((d) => idToHex(d.id));
    for (let i = 0; i < 3; i++) {
      const want = i === 2 ? '0xFF digest mismatch' : '0x00 download ok';
      await campaign.locator(`tr[data-device="${ids[i]}"] td.status:text("${want}")`).waitFor({ timeout: 30000 });
    }
    expect(await campaign.locator(`tr[data-device="${ids[2]}"]`).getAttribute('data-state')).toBe('failed');
    // One device by its own button, then the rest with "Activate all ready".
    await campaign.locator(`tr[data-device="${ids[0]}"] button.activate-one`).click();
    await campaign.locator(`tr[data-device="${ids[0]}"] td.status:text("0x10 activated, confirmed")`).waitFor({ timeout: 30000 });
    // "Activate all" asks first: dismissed, nothing happens; accepted, the rest activate.
    page.once('dialog', (d) => void d.dismiss());
    await campaign.locator('button.activate-all:not([disabled])').click();
    await page.waitForTimeout(300);
    expect(await campaign.locator(`tr[data-device="${ids[1]}"]`).getAttribute('data-state')).toBe('staged');
    page.once('dialog', (d) => void d.accept());
    await campaign.locator('button.activate-all:not([disabled])').click();
    await campaign.locator(`tr[data-device="${ids[1]}"] td.status:text("0x10 activated, confirmed")`).waitFor({ timeout: 30000 });
    const states = await campaign.locator('tbody tr').evaluateAll((rows) => rows.map((r) => [(r as unknown as DomEl).dataset.device, (r as unknown as DomEl).dataset.status]));
    expect(Object.fromEntries(states)).toEqual({ [ids[0]]: '16', [ids[1]]: '16', [ids[2]]: '255' });
    expect(stack.devices.map((d) => d.boots)).toEqual([1, 1, 0]);
    // Retry the failed device from its row: a new initiate goes out, and the digest fails again.
    const initiatesBefore = stack.app.registry.audit({ device: stack.devices[2].id }).filter((a) => a.type === 'initiate').length;
    await campaign.locator(`tr[data-device="${ids[2]}"] button.retry-one`).click();
    await until('a second initiate', () => stack.app.registry.audit({ device: stack.devices[2].id }).filter((a) => a.type === 'initiate').length === initiatesBefore + 1);
    await campaign.locator(`tr[data-device="${ids[2]}"][data-state="failed"] td.status:text("0xFF digest mismatch")`).waitFor();
  });

  test('device panel: readings a device sends appear live, with their time and a trend line', async () => {
    const { page } = b;
    const dev = stack.devices[0];
    const id = idToHex(dev.id);
    await page.click('#tabs a[data-view="devices"]');
    await page.click(`#devices tr[data-id="${id}"] a.open`);
    await page.waitForSelector('#device-panel:not([hidden])');
    expect(page.url()).toMatch(new RegExp(`#/devices/${id}$`));
    await page.waitForSelector('#dp-readings td:text("no data yet")');
    await dev.sendData('temperature', 21.5);
    const row = page.locator('#dp-readings tr[data-id="temperature"]');
    await row.locator('td.value:text("21.5 double")').waitFor();
    expect(await row.locator('svg.trend').count()).toBe(0); // one reading: no trend yet
    await dev.sendData('temperature', 22.25);
    await dev.sendData('temperature', 20);
    await dev.sendData('status', 'door open');
    await row.locator('td.value:text("20 double")').waitFor();
    expect(await row.locator('svg.trend').getAttribute('aria-label')).toBe('trend of 3 readings from 20 to 22.25');
    await page.locator('#dp-readings tr[data-id="status"] td.value:text("door open text")').waitFor();
    const cells = await row.locator('td').allTextContents();
    expect(cells[0]).toBe('temperature');
    expect(cells[2]).toMatch(/\d/); // the time of the latest reading
    expect(stack.app.registry.readings(dev.id, 'temperature').map((r) => r.data.length)).toEqual([8, 8, 8]);
    await page.click('#dp-close');
  });

  test('device panel: ID request, action and terminate from the page', async () => {
    const { page } = b;
    const id = idToHex(stack.devices[1].id);
    await page.click(`#devices tr[data-id="${id}"] a.open`);
    await page.waitForSelector('#device-panel:not([hidden])');
    // Each result shows next to the control that asked for it.
    await page.click('#dp-id-request');
    await page.waitForSelector('#dp-result:text("identifies as \\"srup-virtual 1.1.0\\"")');
    await page.fill('#dp-action input[name=actionId]', '1');
    await page.click('#dp-action button');
    await page.waitForSelector('#dp-action output.ok:text("action 1: 0x20 action done")');
    page.once('dialog', (d) => void d.accept());
    await page.click('#dp-terminate');
    await page.waitForSelector('#dp-info dd:text-is("terminated")');
    await page.click('#dp-close');
    await page.locator(`#devices tr[data-id="${id}"][data-state="terminated"]`).waitFor();
    expect(stack.app.registry.device(stack.devices[1].id)?.state).toBe('terminated');
  });
});
