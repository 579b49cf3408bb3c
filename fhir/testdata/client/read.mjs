// Reads iomt's FHIR API with fhir-kit-client, a client iomt did not write, and prints what
// it saw as JSON for fhir/client_test.go to check. Usage: node read.mjs <base> <token> <patient>
import { Client } from 'fhir-kit-client';

const [base, token, patient] = process.argv.slice(2);
const client = new Client({ baseUrl: base, customHeaders: { Authorization: `Bearer ${token}` } });

const cs = await client.capabilityStatement();
const pat = await client.read({ resourceType: 'Patient', id: patient });
const patients = await client.search({ resourceType: 'Patient', searchParams: { _count: 1 } });
const patientIds = [];
for (let b = patients; b; b = await client.nextPage({ bundle: b })) {
  for (const e of b.entry ?? []) patientIds.push(e.resource.id);
}
const devices = await client.search({ resourceType: 'Device', searchParams: { patient: `Patient/${patient}` } });
const deviceIds = (devices.entry ?? []).map((e) => e.resource.id);
const dev = await client.read({ resourceType: 'Device', id: deviceIds[0] });

const obs = await client.search({
  resourceType: 'Observation',
  searchParams: { patient, category: 'vital-signs', _count: 50, _sort: '-date' },
});
const obsIds = [];
let pages = 0;
let last;
for (let b = obs; b; b = await client.nextPage({ bundle: b })) {
  pages++;
  last = b;
  for (const e of b.entry ?? []) obsIds.push(e.resource.id);
}
// Back one page from the last through the previous link.
const prev = await client.prevPage({ bundle: last });
const prevFirst = prev?.entry?.[0]?.resource?.id;
const one = await client.read({ resourceType: 'Observation', id: obsIds[obsIds.length - 1] });
let notFound = '';
try {
  await client.read({ resourceType: 'Observation', id: 'nope' });
} catch (err) {
  notFound = `${err.response?.status} ${err.response?.data?.resourceType}`;
}
console.log(JSON.stringify({
  fhirVersion: cs.fhirVersion, patientName: pat.name?.[0]?.text, patientIds, deviceIds,
  deviceKind: dev.type?.text, total: obs.total, pages, obsIds, oneCode: one.code?.coding?.[0]?.code, notFound, prevFirst,
}));
