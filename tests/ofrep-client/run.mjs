// Evaluates flags through published, unmodified OpenFeature OFREP providers against an
// edgeflags edge (argv[2] = base URL, argv[3] = the ofrep_token) and prints the results
// as one JSON object for tests/e2e/ofrep.rs to check. argv[4], when given, is a page the
// edge served: its bootstrap element answers the web provider's first bulk request, so
// the provider starts without a network call.
import { readFileSync } from 'node:fs';
import { OpenFeature as Server } from '@openfeature/server-sdk';
import { OFREPProvider } from '@openfeature/ofrep-provider';
import { OpenFeature as Web } from '@openfeature/web-sdk';
import { OFREPWebProvider } from '@openfeature/ofrep-web-provider';

const [baseUrl, token, pageFile] = process.argv.slice(2);
const out = {};
const details = (d) => ({ value: d.value, variant: d.variant, reason: d.reason, errorCode: d.errorCode ?? null });

// Server side: the dynamic-context provider, one POST per evaluation, authenticated, so
// the context it sends speaks for its end user (a Japanese user on a phone).
await Server.setProviderAndWait(new OFREPProvider({ baseUrl, headers: [['Authorization', `Bearer ${token}`]] }));
const server = Server.getClient();
const jp = { targetingKey: 'user-42', country: 'JP', device: 'mobile' };
out.serverLocale = details(await server.getStringDetails('locale', 'xx', jp));
out.serverSearch = details(await server.getBooleanDetails('new-search', false, jp));
out.serverCheckout = details(await server.getStringDetails('checkout', 'xx', { targetingKey: 'u-beta-1' }));
out.serverMissing = details(await server.getStringDetails('no-such-flag', 'fallback', jp));
out.serverWrongType = details(await server.getNumberDetails('locale', 7, jp));

// Browser side: the static-context provider, one bulk POST, cached by ETag; it is not
// authenticated, so the edge's own geo (127.0.0.1 is New York) beats the context's.
Web.setContext({ targetingKey: 'user-42', country: 'JP' });
await Web.setProviderAndWait(new OFREPWebProvider({ baseUrl, pollInterval: 0, cacheMode: 'disabled', changeDetection: 'none' }));
const web = Web.getClient();
out.webLocale = details(web.getStringDetails('locale', 'xx'));
out.webCheckout = details(web.getStringDetails('checkout', 'xx'));
out.webMissing = details(web.getStringDetails('no-such-flag', 'fallback'));

// A page's script reads the bootstrap element as a browser would read
// `JSON.parse(document.getElementById('edgeflags-bootstrap').textContent)`; the unmodified
// web provider gets it through its `fetchImplementation`: the first bulk request is
// answered from the element, and anything else would have gone to the network.
if (pageFile) {
  const html = readFileSync(pageFile, 'utf8');
  const found = html.match(/<script type="application\/json" id="edgeflags-bootstrap">([^<]*)<\/script>/);
  const bootstrap = found ? found[1] : null;
  const calls = { answered: 0, reached: 0 };
  const fetchImplementation = async (input, init) => {
    const url = typeof input === 'string' ? input : input.url;
    if (bootstrap !== null && calls.answered === 0 && url.endsWith('/ofrep/v1/evaluate/flags')) {
      calls.answered += 1;
      return new Response(bootstrap, { status: 200, headers: { 'content-type': 'application/json' } });
    }
    calls.reached += 1;
    throw new TypeError(`no network in this test: ${url}`);
  };
  const provider = new OFREPWebProvider({
    baseUrl: 'http://edge.invalid',
    fetchImplementation,
    pollInterval: 0,
    cacheMode: 'disabled',
    changeDetection: 'none',
  });
  await Web.setProviderAndWait('bootstrap', provider);
  const page = Web.getClient('bootstrap');
  out.bootStoreBanner = details(page.getStringDetails('store-banner', 'xx'));
  out.bootProductTile = details(page.getStringDetails('product-tile', 'xx'));
  out.bootLocale = details(page.getStringDetails('locale', 'xx'));
  out.bootCalls = calls;
}

console.log(JSON.stringify(out));
await Server.close();
await Web.close();
