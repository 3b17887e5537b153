import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Container, V1Service, V1ServicePort } from '@kubernetes/client-node';
import { portsFiltersMiss } from '../../../src/session/up/filter-ports.js';
import { GLOBAL_ROUTE, type SessionRoute } from '../../../src/tunnel/route.js';

const personal: SessionRoute = { mode: 'filtered', headers: [], personalKey: 'k'.repeat(32) };
const app: V1Container = {
  name: 'app',
  ports: [
    { containerPort: 8080, name: 'web' },
    { containerPort: 5432, name: 'postgres' },
  ],
};
const service = (...ports: V1ServicePort[]): V1Service => ({ metadata: { name: 'api' }, spec: { ports } });

describe('ports a filter cannot see', () => {
  it('says nothing for a global session', () => {
    assert.deepEqual(portsFiltersMiss(GLOBAL_ROUTE, [service({ port: 5432, name: 'postgres' })], app), []);
  });

  it('names a port declared as another protocol by appProtocol, by name, or by the container port it targets', () => {
    const notes = portsFiltersMiss(
      personal,
      [
        service(
          { port: 80, name: 'http', targetPort: 8080 as never },
          { port: 443, appProtocol: 'https', targetPort: 8443 as never },
          { port: 5432, targetPort: 5432 as never },
          { port: 53, protocol: 'UDP' },
        ),
      ],
      app,
    );
    assert.equal(notes.length, 3);
    assert.match(notes[0]!, /port 443 of service\/api declares appProtocol https/);
    assert.match(notes[1]!, /port 5432 of service\/api is named postgres/);
    assert.match(notes[2]!, /port 53 of service\/api is UDP/);
    for (const note of notes) assert.match(note, /goes to the pod's app/);
  });

  it('takes HTTP declarations and undeclared ports as HTTP', () => {
    const notes = portsFiltersMiss(
      { mode: 'mirror', headers: [] },
      [
        service(
          { port: 80, targetPort: 8080 as never },
          { port: 81, appProtocol: 'kubernetes.io/h2c' },
          { port: 82, name: 'grpc-api', appProtocol: 'grpc' },
          { port: 83, name: 'metrics' },
        ),
      ],
      app,
    );
    assert.deepEqual(notes, []);
  });
});
