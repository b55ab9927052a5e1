/** `srup decode FILE --key SIGNER.pem`: decode, verify and show one message as sidecar-style JSON. */
import { openEnvelope } from '../../crypto/envelope.js';
import { CryptoError } from '../../crypto/types.js';
import { decode, signedBytes } from '../../modules/srup/codec.js';
import { DATA_KINDS, isDataKind, type DataKind } from '../../modules/srup/data.js';
import { SrupError } from '../../modules/srup/errors.js';
import { verify } from '../../modules/srup/session.js';
import { UsageError, optBoolean, optString, requireString, type Command } from '../lib/cli.js';
import { CRYPTO_OPTION, selectCrypto } from '../lib/crypto.js';
import { loadPrivateKey, loadPublicKey, readBytes } from '../lib/files.js';
import { ENVELOPE_FIELD, messageJson, type Json } from '../lib/json.js';

export const decodeCommand: Command = {
  name: 'decode',
  summary: 'Decode a SRUP message, verify its signature and print it as JSON.',
  synopsis: 'FILE --key SIGNER_PUBLIC.pem [--recipient-key RECIPIENT_PRIVATE.pem]',
  positionals: { min: 1, max: 1, names: ['FILE (the message to decode)'] },
  options: {
    key: { type: 'string', short: 'k', value: 'PEM', description: "the signer's public key (SubjectPublicKeyInfo PEM)" },
    'recipient-key': {
      type: 'string',
      value: 'PEM',
      description: 'private key to open the encrypted envelope with (encrypted-value types only)',
    },
    'data-as': {
      type: 'string',
      value: 'KIND',
      description: `also show the data payload read as one of: ${DATA_KINDS.join(', ')}`,
    },
    crypto: CRYPTO_OPTION,
    compact: { type: 'boolean', description: 'print the JSON on one line' },
  },
  details: `Prints one JSON object in the conventions of the test-vector sidecars (ids as {dec, hex}, byte strings
as {len, hex, text?}, snake_case field names, the envelope under "encrypted") with "verified": true.
A message that does not decode, verify or (with --recipient-key) open prints
{"rejected": true, "reason": "…", "detail": "…"} instead.

Exit status: 0 verified, 1 rejected, 2 usage error, unreadable file or unusable key.`,

  run({ values, positionals }, { stdout }) {
    const file = positionals[0];
    const keyPath = requireString(values, 'key');
    const recipientPath = optString(values, 'recipient-key');
    const dataAsArg = optString(values, 'data-as');
    if (dataAsArg !== undefined && !isDataKind(dataAsArg)) {
      throw new UsageError(`--data-as must be one of ${DATA_KINDS.join(', ')}`);
    }
    const dataAs: DataKind | undefined = dataAsArg;
    const crypto = selectCrypto(values);
    const bytes = readBytes(file, 'message');
    const key = loadPublicKey(keyPath, '--key');
    const recipient = recipientPath === undefined ? undefined : loadPrivateKey(recipientPath, '--recipient-key');
    const indent = optBoolean(values, 'compact') ? undefined : 2;
    const print = (j: Json) => stdout.write(JSON.stringify(j, null, indent) + '\n');
    const reject = (reason: string, detail: string) => {
      print({ rejected: true, reason, detail });
      return 1;
    };

    try {
      const message = decode(bytes);
      const signed = signedBytes(message);
      if (!verify(crypto, key, message)) {
        return reject('bad_signature', 'the signature does not verify with --key');
      }
      let plaintext: Uint8Array | null | undefined;
      const env = (message.fields as Record<string, unknown>)[ENVELOPE_FIELD];
      if (recipient && env instanceof Uint8Array) {
        if (env.length === 0) plaintext = null;
        else {
          try {
            plaintext = openEnvelope(crypto, recipient, env);
          } catch (e) {
            if (e instanceof CryptoError) return reject('bad_envelope', e.message);
            throw e;
          }
        }
      }
      print(
        messageJson(bytes, message, {
          sha256: crypto.sha256(bytes),
          signedBytes: signed,
          plaintext,
          dataAs,
          verified: true,
        }),
      );
      return 0;
    } catch (e) {
      if (e instanceof SrupError) return reject(e.reason, e.message);
      throw e;
    }
  },
};
