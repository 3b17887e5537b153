/**
 * Seeded fuzzing of the restore records (`devbox.dev/original`, `devbox.dev/session`) that
 * `down` and `clean` read back from the cluster, where anyone who may edit the workload can
 * change them. A tampered record is refused (CONFLICT naming the annotation) or, when it
 * passes, restoring it never drops the app, never keeps the agent, and never changes what the
 * workload as it stands can vouch for (images, other containers, Service fields).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Service } from '@kubernetes/client-node';
import {
  AGENT_CONTAINER,
  ANNOTATION_ORIGINAL,
  ANNOTATION_SESSION,
  planIntercept,
  restoreService,
  restoreWorkload,
  sessionOf,
} from '../../../src/kube/intercept.js';
import type { Workload } from '../../../src/kube/workload.js';
import { isDevboxError } from '../../../src/util/errors.js';
import { fuzz, onlyTypedErrors, perturb, type Rng } from '../../support/fuzz.js';
import { service } from '../kube/fixtures.js';

function deployment(): Workload {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'api', namespace: 'shop', resourceVersion: '7' },
    spec: {
      selector: { matchLabels: { app: 'api' } },
      template: {
        metadata: { labels: { app: 'api' } },
        spec: {
          containers: [
            {
              name: 'app',
              image: 'registry.local/api:1',
              ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }],
              readinessProbe: { httpGet: { path: '/', port: 'http' } },
            },
            { name: 'sidecar', image: 'registry.local/log:2' },
          ],
        },
      },
    },
  } as Workload;
}

const svc = (): V1Service =>
  service('shop', 'api', '10.96.0.9', [{ port: 80, targetPort: 8080, name: 'web' }], { app: 'api' });

/** The workload and Service as `up` writes them. */
function intercepted() {
  const plan = planIntercept({
    workload: deployment(),
    services: [svc()],
    container: 'app',
    agent: { image: 'node:22-slim', bundleConfigMap: 'b', bundleSha256: 'ab'.repeat(32), tokenSecret: 't' },
    holder: { user: 'alice', host: 'laptop', startedAt: '2026-05-01T10:00:00Z', id: '3f2a' },
  });
  return { workload: plan.workload, service: plan.services[0]! };
}

/** The annotation's JSON with a few values replaced, or its text mangled. */
function tamper(rng: Rng, raw: string): string {
  if (rng.chance(5)) return rng.mutate(Buffer.from(raw)).toString('utf8');
  let value: unknown = JSON.parse(raw);
  for (let i = 1 + rng.int(3); i > 0; i--) value = perturb(rng, value);
  return JSON.stringify(value) ?? 'null';
}

const refused = (err: unknown) => isDevboxError(err, 'CONFLICT');

describe('fuzz: restore records read back from the cluster', () => {
  it('a tampered workload record is refused, or restores with the app and without the agent', () => {
    fuzz('workload record', { rounds: 400 }, (rng) => {
      const { workload } = intercepted();
      const annotations = workload.metadata!.annotations!;
      annotations[ANNOTATION_ORIGINAL] = tamper(rng, annotations[ANNOTATION_ORIGINAL]!);
      const record = annotations[ANNOTATION_ORIGINAL];
      const restored = onlyTypedErrors(refused, () => restoreWorkload(workload), record);
      if (!restored) return;
      const containers = restored.object.spec!.template.spec!.containers;
      const names = containers.map((c) => c.name);
      assert.ok(!names.includes(AGENT_CONTAINER), `agent kept by ${record}`);
      assert.ok(names.includes('app') && names.includes('sidecar'), `${names} after ${record}`);
      const app = containers.find((c) => c.name === 'app')!;
      assert.equal(app.image, 'registry.local/api:1', `image changed by ${record}`);
      assert.ok(
        !(restored.object.spec!.template.spec!.volumes ?? []).some((v) => v.name.startsWith('devbox-')),
      );
      // The record is the only copy of the port names and probe ports devbox handed to the agent;
      // everything else is checked against the workload as it stands.
      const original = deployment().spec!.template.spec!.containers;
      assert.deepEqual(
        containers.find((c) => c.name === 'sidecar'),
        original[1],
        record,
      );
      const { ports: _ports, readinessProbe: _probe, ...rest } = app;
      const { ports: _originalPorts, readinessProbe: _originalProbe, ...originalRest } = original[0]!;
      assert.deepEqual(rest, originalRest, record);
      assert.deepEqual(restored.object.spec!.selector, deployment().spec!.selector, record);
    });
  });

  it('a tampered Service record is refused, or restores to the Service as it was when reported exact', () => {
    fuzz('service record', { rounds: 400 }, (rng) => {
      const { service: current } = intercepted();
      const annotations = current.metadata!.annotations!;
      annotations[ANNOTATION_ORIGINAL] = tamper(rng, annotations[ANNOTATION_ORIGINAL]!);
      const record = annotations[ANNOTATION_ORIGINAL];
      const restored = onlyTypedErrors(refused, () => restoreService(current), record);
      if (!restored) return;
      // The record is the only copy of the original targetPorts; the rest must match the Service as it stands.
      const withoutTargets = (spec: V1Service['spec']) => ({
        ...spec,
        ports: spec?.ports?.map(({ targetPort: _t, ...p }) => p),
      });
      assert.deepEqual(withoutTargets(restored.object.spec), withoutTargets(svc().spec), record);
      for (const p of restored.object.spec?.ports ?? []) {
        assert.ok(
          p.targetPort === undefined || typeof p.targetPort === 'string' || Number.isInteger(p.targetPort),
        );
      }
    });
  });

  it('a tampered session record is refused or reads as a holder of strings', () => {
    fuzz('session record', { rounds: 800 }, (rng) => {
      const { workload } = intercepted();
      const annotations = workload.metadata!.annotations!;
      annotations[ANNOTATION_SESSION] = rng.chance(10)
        ? rng.pick(['null', '""', '[]', '{}', '1', 'true'])
        : tamper(rng, annotations[ANNOTATION_SESSION]!);
      const holder = onlyTypedErrors(refused, () => sessionOf(workload), annotations[ANNOTATION_SESSION]);
      if (!holder) return;
      for (const field of ['user', 'host', 'startedAt', 'id'] as const) {
        assert.equal(typeof holder[field], 'string', annotations[ANNOTATION_SESSION]);
      }
    });
  });
});
