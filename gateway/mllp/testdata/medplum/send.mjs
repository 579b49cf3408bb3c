// Sends one HL7 v2 message (a file, MLLP-framed or bare, CR or CRLF) to an MLLP listener with
// Medplum's HL7 client and prints the acknowledgement's MSA segment: MSA|<code>|<control id>|<text>.
// Usage: node send.mjs HOST PORT FILE
import { readFileSync } from 'node:fs';
import { Hl7Message } from '@medplum/core';
import { Hl7Client } from '@medplum/hl7';

const [host, port, file] = process.argv.slice(2);
const text = readFileSync(file, 'latin1').replace(/[\x0b\x1c]/g, '').replace(/\r\n|\n/g, '\r').replace(/\r+$/, '');
const client = new Hl7Client({ host, port: Number(port) });
const ack = await client.sendAndWait(Hl7Message.parse(text), { timeoutMs: 10000 });
console.log(ack.getSegment('MSA').toString());
// The listener keeps the connection open for the monitor's next message; do not wait for it.
process.exit(0);
