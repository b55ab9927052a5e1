/** `srup encode TYPE --fields JSON --key PRIVATE.pem -o FILE`: build and sign one message from JSON. */
import { writeFileSync } from 'node:fs';
import { sealEnvelope } from '../../crypto/envelope.js';
import { CryptoError } from '../../crypto/types.js';
import { randomBytes } from '../../hosts/node/crypto.js';
import { encode } from '../../modules/srup/codec.js';
import { SrupError } from '../../modules/srup/errors.js';
import { JsonFormError } from '../lib/json.js';
import { TYPE_NAMES } from '../../modules/srup/schema.js';
import { sign } from '../../modules/srup/session.js';
import { CliError, requireString, wrapList, type Command } from '../lib/cli.js';
import { CRYPTO_OPTION, selectCrypto } from '../lib/crypto.js';
import { loadPrivateKey, loadPublicKey, readJsonArg } from '../lib/files.js';
import { parseMessageJson, type SealFn } from '../lib/json.js';

export const encodeCommand: Command = {
  name: 'encode',
  summary: 'Build a SRUP message from JSON, sign it and write its bytes.',
  synopsis: '[TYPE] --fields JSON --key SIGNER_PRIVATE.pem -o FILE',
  positionals: { min: 0, max: 1 },
  options: {
    fields: {
      type: 'string',
      short: 'f',
      value: 'JSON',
      description: 'the message as JSON: inline, @FILE, or - for standard input',
    },
    key: { type: 'string', short: 'k', value: 'PEM', description: "the signer's private key (PKCS#8 or PKCS#1 PEM)" },
    output: { type: 'string', short: 'o', value: 'FILE', description: 'where to write the message (- for standard output)' },
    crypto: CRYPTO_OPTION,
  },
  details: `${wrapList('TYPE is one of:', TYPE_NAMES)}
It may be left out when the JSON has "type".

The JSON uses the conventions of the test-vector sidecars, so a sidecar or the output of \`srup decode\` can be
given as it is (descriptive members such as signature, length or sha256 are ignored):
  {"sequence_id": "1" | "0x…" | {"dec"|"hex"},  "sender_id": …,
   "token": {"text": "…"} | {"hex": "…"},
   "fields": {"action_id": 3, "data_id": {"text": "VALUE"}, "data": {"hex": "d4fe"}, "target_id": "0x…", …},
   "encrypted": {"envelope_hex": "…"} | {"plaintext_text"|"plaintext_hex": "…", "recipient_key": "PUBLIC.pem"}}
Byte strings take {"hex"} or {"text"}; a data payload also takes {"type": "int16", "value": -300}.

Exit status: 0 written, 1 the JSON does not describe a message of TYPE, 2 usage error, unreadable file or key.`,

  run({ values, positionals }, { stdout }) {
    const fieldsArg = requireString(values, 'fields');
    const keyPath = requireString(values, 'key');
    const output = requireString(values, 'output');
    const crypto = selectCrypto(values);
    const json = readJsonArg(fieldsArg, '--fields');
    const key = loadPrivateKey(keyPath, '--key');
    const seal: SealFn = (plaintext, recipientKey, path) => {
      const recipient = loadPublicKey(recipientKey, path);
      try {
        return sealEnvelope(crypto, recipient, plaintext, randomBytes);
      } catch (e) {
        if (e instanceof CryptoError || e instanceof RangeError) throw new CliError(`${path}: ${e.message}`, 1);
        throw e;
      }
    };

    let bytes: Uint8Array;
    try {
      const unsigned = parseMessageJson(json, { type: positionals[0], seal });
      bytes = encode(sign(crypto, key, unsigned));
    } catch (e) {
      if (e instanceof SrupError || e instanceof JsonFormError) throw new CliError(e.message, 1);
      throw e;
    }
    if (output === '-') {
      stdout.write(bytes);
    } else {
      try {
        writeFileSync(output, bytes);
      } catch (e) {
        throw new CliError(`cannot write ${output}: ${e instanceof Error ? e.message : String(e)}`, 2);
      }
      stdout.write(`${output}: ${bytes.length} bytes\n`);
    }
    return 0;
  },
};
