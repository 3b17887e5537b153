/**
 * Where a share link's browser comes in: an Ingress rule to one of the entry's Services, else a
 * LoadBalancer address, else the port-forward command to run; and the errors that name what to change.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Ingress, V1Service } from '@kubernetes/client-node';
import { type EntryInput, entryAddress, shareLink } from '../../../src/kube/entry.js';
import { isDevboxError } from '../../../src/util/errors.js';

const podLabels = { app: 'storefront', tier: 'web' };

function service(
  name: string,
  spec: Partial<V1Service['spec']> = {},
  status: V1Service['status'] = {},
): V1Service {
  return {
    metadata: { name },
    spec: { selector: { app: 'storefront' }, ports: [{ name: 'http', port: 80 }], ...spec },
    status,
  };
}

function ingress(
  name: string,
  rule: Record<string, unknown>,
  extra: Partial<V1Ingress['spec']> = {},
): V1Ingress {
  return { metadata: { name }, spec: { rules: [rule as never], ...extra } };
}

const base = (over: Partial<EntryInput>): EntryInput => ({
  label: 'deploy/storefront',
  namespace: 'shop',
  podLabels,
  services: [service('storefront')],
  ingresses: [],
  localPort: 18080,
  ...over,
});

const toStorefront = (path = '/', port: Record<string, unknown> = { number: 80 }) => ({
  http: { paths: [{ path, pathType: 'Prefix', backend: { service: { name: 'storefront', port } } }] },
});

describe('entry address', () => {
  it('is an Ingress host when a rule leads to the Service, https when its TLS covers the host', () => {
    const plain = entryAddress(
      base({ ingresses: [ingress('web', { host: 'shop.example', ...toStorefront() })] }),
    );
    assert.deepEqual(plain, {
      kind: 'ingress',
      url: 'http://shop.example/',
      service: 'storefront',
      ingress: 'web',
    });
    const tls = entryAddress(
      base({
        ingresses: [
          ingress(
            'web',
            { host: 'shop.example', ...toStorefront('/shop', { name: 'http' }) },
            {
              tls: [{ hosts: ['shop.example'] }],
            },
          ),
        ],
      }),
    );
    assert.equal(tls.url, 'https://shop.example/shop/');
  });

  it('skips Ingress rules for other Services, other ports, wildcard hosts, or with no address at all', () => {
    const other = {
      http: {
        paths: [
          { path: '/', pathType: 'Prefix', backend: { service: { name: 'api', port: { number: 80 } } } },
        ],
      },
    };
    const result = entryAddress(
      base({
        ingresses: [
          ingress('a', { host: 'api.example', ...other }),
          ingress('b', { host: 'shop.example', ...toStorefront('/', { number: 8080 }) }),
          ingress('c', { host: '*.example', ...toStorefront() }),
          ingress('d', toStorefront()),
        ],
      }),
    );
    assert.equal(result.kind, 'port-forward');
  });

  it('is a LoadBalancer address when the Service has one', () => {
    const lb = service(
      'storefront-lb',
      { type: 'LoadBalancer', ports: [{ name: 'web', port: 8080 }] },
      {
        loadBalancer: { ingress: [{ ip: '203.0.113.7' }] },
      },
    );
    assert.deepEqual(entryAddress(base({ services: [service('storefront'), lb] })), {
      kind: 'load-balancer',
      url: 'http://203.0.113.7:8080/',
      service: 'storefront-lb',
    });
  });

  it('else is the port-forward command to run, on the port asked for', () => {
    const two = service('storefront', {
      ports: [
        { name: 'metrics', port: 9090 },
        { name: 'http-web', port: 80 },
      ],
    });
    const result = entryAddress(base({ services: [two], kubectlFlags: ['--context', 'dev'] }));
    assert.deepEqual(result, {
      kind: 'port-forward',
      url: 'http://localhost:18080/',
      service: 'storefront',
      command: ['--context', 'dev', '-n', 'shop', 'port-forward', 'svc/storefront', '18080:80'],
    });
    const metrics = entryAddress(base({ services: [two], port: 9090 }));
    assert.deepEqual(metrics.kind === 'port-forward' && metrics.command.at(-1), '18080:9090');
  });

  it('fails naming what to change when no Service selects the entry, or it has no such port', () => {
    const elsewhere = service('api', { selector: { app: 'api' } });
    const noSelector = service('manual', { selector: {} });
    assert.throws(
      () => entryAddress(base({ services: [elsewhere, noSelector] })),
      (err) =>
        isDevboxError(err, 'NOT_FOUND') &&
        /deploy\/storefront/.test(err.message) &&
        /--entry/.test(err.hint ?? ''),
    );
    assert.throws(
      () => entryAddress(base({ port: 81 })),
      (err) =>
        isDevboxError(err, 'NOT_FOUND') &&
        /port 81/.test(err.message) &&
        /storefront:<port>/.test(err.hint ?? ''),
    );
  });

  it('the link is the entry URL with the share key as its query', () => {
    assert.equal(shareLink('http://localhost:18080/', 'KEY'), 'http://localhost:18080/?devbox-share=KEY');
  });
});
