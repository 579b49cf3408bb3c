// Reads iomt's FHIR API with fhir-kit-client and a SMART-scoped token, and prints what it
// could and could not do as JSON for fhir/client_test.go to check.
// Usage: node scoped.mjs <base> <token> <patient>
import { Client } from 'fhir-kit-client';

const [base, token, patient] = process.argv.slice(2);
const client = new Client({ baseUrl: base, customHeaders: { Authorization: `Bearer ${token}` } });

const refused = async (f) => {
  try {
    await f();
    return 'allowed';
  } catch (err) {
    const d = err.response?.data;
    return `${err.response?.status} ${d?.issue?.[0]?.diagnostics ?? ''}`;
  }
};
const vitals = await client.search({ resourceType: 'Observation', searchParams: { patient, category: 'vital-signs', _count: 1000 } });
const categories = [...new Set((vitals.entry ?? []).map((e) => e.resource.category[0].coding[0].code))];
const pat = await client.read({ resourceType: 'Patient', id: patient });
console.log(JSON.stringify({
  vitalsTotal: vitals.total,
  categories,
  patientName: pat.name?.[0]?.text,
  allObservations: await refused(() => client.search({ resourceType: 'Observation', searchParams: { patient } })),
  patientSearch: await refused(() => client.search({ resourceType: 'Patient', searchParams: {} })),
  device: await refused(() => client.search({ resourceType: 'Device', searchParams: { patient } })),
}));
