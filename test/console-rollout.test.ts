/**
 * A staged rollout from the console in Chromium, against the whole stack (Mosquitto, the C2 server, four
 * virtual devices running the real agent): an image uploaded to the library, a campaign to the selected devices
 * with a first wave of two, paused and resumed, the operator's go for the second wave, then "activate all"
 * (which asks first) until every device confirms the new image.
 */
import fs from 'node:fs';
import path from 'node:path';
import { idToHex } from '../hosts/node/durable.js';
import { demoImage } from '../tools/c2/virtual.js';
import { findMosquitto } from './support/mosquitto.js';
import { browserAvailable, openBrowser, startStack, until, type Stack } from './support/browser.js';

const run = findMosquitto() !== null && browserAvailable();
const describeIf = run ? describe : describe.skip;

describeIf('a staged rollout in the console', () => {
  let stack: Stack;
  let b: Awaited<ReturnType<typeof openBrowser>>;

  beforeAll(async () => {
    stack = await startStack({ devices: 4 });
    await Promise.all(stack.devices.map((d) => d.join('simple')));
    b = await openBrowser();
    const { page } = b;
    await page.goto(stack.app.url + '/');
    await page.fill('#token', stack.app.operatorToken as string);
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector('#main:not([hidden])');
  }, 60000);

  afterAll(async () => {
    await b?.close();
    await stack?.stop();
  });

  test('the image library: an upload shows its name, version, digest, size and who uploaded it', async () => {
    const { page } = b;
    const file = path.join(stack.dir, 'sensor-2.0.0.bin');
    fs.writeFileSync(file, demoImage('srup-virtual', '2.0.0', 96 * 1024));
    await page.click('#tabs a[data-view="images"]');
    await page.fill('#image-form input[name=name]', 'sensor');
    await page.fill('#image-form input[name=version]', '2.0.0');
    await page.setInputFiles('#image-form input[name=file]', file);
    await page.click('#image-form button[type=submit]');
    await page.waitForSelector('#image-form output.ok:text("sensor 2.0.0 stored")');
    const row = page.locator('#images tbody tr >> nth=0');
    await row.waitFor();
    const cells = await row.locator('td').allTextContents();
    expect(cells.slice(0, 2)).toEqual(['sensor', '2.0.0']);
    expect(cells[3]).toBe('96.0 KiB');
    expect(cells[5]).toBe('admin');
  });

  test('waves: the first two devices, paused and resumed, then the go for the rest; activate all asks first', async () => {
    const { page } = b;
    const ids = stack.devices.map((d) => idToHex(d.id)).sort();
    await page.click('#tabs a[data-view="devices"]');
    await page.locator('#devices tr[data-state="joined"] >> nth=3').waitFor();
    await page.check('#select-all');
    await page.click('#selection-campaign');
    await page.waitForSelector('#view-campaigns:not([hidden])');
    await page.fill('#campaign-form input[name=name]', 'sensor rollout');
    await page.selectOption('#campaign-form select[name=image]', { label: await page.locator('#campaign-form select[name=image] option >> nth=1').textContent() as string });
    await page.selectOption('#campaign-form select[name=waveKind]', 'count');
    await page.fill('#campaign-form input[name=waveSize]', '2');
    await page.selectOption('#campaign-form select[name=waveThen]', 'manual');
    await page.click('#campaign-form button[type=submit]');
    await page.waitForURL(/#\/campaigns\/1$/);
    const card = page.locator('.campaign[data-id="1"]');
    await card.waitFor();
    expect(await card.locator('h3').textContent()).toBe('#1 sensor rollout');
    expect(await card.locator('table.waves tbody tr').count()).toBe(2);

    // Pause at once: the campaign says so; nothing of the second wave goes out while paused.
    await card.locator('button.pause').click();
    await page.waitForSelector('.campaign[data-state="paused"]');
    await page.waitForSelector('.campaign button.resume');
    expect(await card.locator('button.pause').count()).toBe(0);
    const firstWave = await card.locator('tr[data-device] td.wave:text-is("1")').count();
    expect(firstWave).toBe(2);
    await card.locator('button.resume').click();
    // The first wave's downloads settle (0x00): the campaign waits for the operator's go, and says why.
    await page.waitForSelector('.campaign[data-state="waiting"]', { timeout: 30000 });
    expect(await card.locator('.reason').textContent()).toMatch(/\S/);
    expect(await card.locator('tr[data-device][data-state="not_sent"]').count()).toBe(2);
    await card.locator('button.proceed').click();
    await page.waitForSelector('.campaign tr[data-device][data-state="staged"] >> nth=3', { timeout: 30000 });
    // Wave 2: two devices, two sent, none done (done is confirmed), none failed.
    await page.waitForSelector('.campaign table.waves tr[data-wave="1"] td:nth-child(3):text-is("2")');
    expect(await card.locator('table.waves tbody tr[data-wave="1"] td').allTextContents()).toEqual(['2', '2', '2', '0', '0']);

    // "Activate all": dismissed, nothing is sent; accepted, every device restarts into the image and confirms.
    page.once('dialog', (d) => void d.dismiss());
    await card.locator('button.activate-all').click();
    await page.waitForTimeout(300);
    expect(await card.locator('tr[data-device][data-state="staged"]').count()).toBe(4);
    page.once('dialog', (d) => void d.accept());
    await card.locator('button.activate-all').click();
    for (const id of ids) await card.locator(`tr[data-device="${id}"] td.status:text("0x10 activated, confirmed")`).waitFor({ timeout: 30000 });
    await page.waitForSelector('.campaign[data-state="done"]');
    expect(await card.locator('table.waves tbody tr[data-wave="1"] td').allTextContents()).toEqual(['2', '2', '2', '2', '0']);
    await until('every device booted the new image', () => stack.devices.every((d) => d.boots === 1));
    // The list shows it done, and the campaign list links to it.
    await page.click('#view-campaign .crumbs a');
    await page.waitForSelector('#campaign-list tr[data-id="1"][data-state="done"]');
    expect(await page.textContent('#campaign-list tr[data-id="1"] td.name')).toBe('sensor rollout');
  }, 90000);
});
