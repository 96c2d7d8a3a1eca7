// A real OpenID Connect provider for the sign-in tests: the certified `oidc-provider` with its development
// login form (any password), one public client (Authorization Code + PKCE, refresh tokens) and JWT access
// tokens for one API audience that carry the account's email.
//
// node provider.mjs CONFIG.json   where CONFIG is
//   {"port": 0, "audience": "https://api...", "clientId": "...", "redirectUris": ["http://.../"],
//    "keys": [<private JWKs, the first signs>], "accessTokenTTL": 300}
// Prints one line `{"issuer": "http://127.0.0.1:PORT"}` once it listens. Accounts: any login is an account
// whose email is the login; logins starting with "unverified" have email_verified false.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));

function account(id) {
  return {
    accountId: id,
    async claims() {
      return { sub: id, email: id, email_verified: !id.startsWith('unverified') };
    },
  };
}

const server = createServer();
await new Promise((resolve) => { server.listen(config.port || 0, '127.0.0.1', resolve); });
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: config.clientId,
    token_endpoint_auth_method: 'none',
    redirect_uris: config.redirectUris,
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
  }],
  jwks: { keys: config.keys },
  findAccount: (ctx, id) => account(id),
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  scopes: ['openid', 'email', 'offline_access'],
  pkce: { required: () => true },
  // The dashboard runs on another origin: its client's redirect origins may call the token endpoint.
  clientBasedCORS: (ctx, origin, client) => client.redirectUris.some((uri) => new URL(uri).origin === origin),
  features: {
    devInteractions: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => config.audience,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, indicator) => {
        if (indicator !== config.audience) throw new Provider.errors.InvalidTarget();
        return {
          scope: 'api', audience: config.audience, accessTokenFormat: 'jwt',
          accessTokenTTL: config.accessTokenTTL || 300, jwt: { sign: { alg: config.keys[0].alg } },
        };
      },
    },
  },
  // Access tokens name the person by email, as Entra ID, Okta or Keycloak can be set up to.
  extraTokenClaims: async (ctx, token) => (token.accountId ? account(token.accountId).claims() : undefined),
  issueRefreshToken: async (ctx, client, code) => client.grantTypeAllowed('refresh_token'),
  ttl: { RefreshToken: 3600, Session: 3600, Interaction: 600, Grant: 3600 },
  cookies: { keys: ['budgetbridge-test-cookie-key'] },
});
provider.proxy = false;
server.on('request', provider.callback());
process.stdout.write(`${JSON.stringify({ issuer })}\n`);
