// gluefleet's SAP OData sandbox: CAP's own server, with a Gateway-style CSRF
// handshake and a few admin endpoints in front of it.
//
// `cds serve` picks this file up because it exports a function: we build the
// express app ourselves so our middleware is mounted before everything CAP
// and the OData V2 adapter plugin mount on 'bootstrap', then hand over to the
// standard cds.server. See README.md for the behaviour it produces.

'use strict'

const crypto = require('node:crypto')
const http = require('node:http')
const cds = require('@sap/cds')
const express = require('express')

const SESSION_COOKIE = 'SAP_SESSIONID_GLF'
const MODIFYING = new Set(['POST', 'PUT', 'PATCH', 'MERGE', 'DELETE'])
// The V2 adapter serves /odata/v2 by proxying over HTTP to /odata/v4 on this
// same server, copying the request headers. We tag the outer request with a
// per-process secret so its inner hop is neither counted nor CSRF-checked.
const HOP_HEADER = 'x-glf-adapter-hop'
const HOP_SECRET = crypto.randomBytes(16).toString('hex')
// Requests with this header (the testkit's own reads) are served, CSRF rules
// unchanged, but not counted in /__admin/stats.
const UNCOUNTED_HEADER = 'x-glf-testkit'

/** session id -> CSRF token; cleared by POST /__admin/csrf/invalidate. */
const sessions = new Map()

function zeroStats() {
  return {
    requests: 0, // every client request to /odata/** (adapter hops excluded)
    batch: 0, // of which POST .../$batch
    csrf_fetch: 0, // of which GET/HEAD with `X-CSRF-Token: Fetch`
    writes: 0, // of which modifying methods (POST incl. $batch, PUT, PATCH, MERGE, DELETE)
    csrf_rejected: 0, // of which answered 403 `X-CSRF-Token: Required`
    v2: 0, // of which under /odata/v2
    v4: 0, // of which under /odata/v4
    by_method: {}, // method (after X-HTTP-Method) -> count
  }
}
let stats = zeroStats()

function cookie(req, name) {
  const header = req.headers.cookie
  if (!header) return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq < 0) continue
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }
  return undefined
}

function randomToken() {
  // Gateway tokens are 24 characters of base64-ish text.
  return crypto.randomBytes(18).toString('base64')
}

/** Counts a client request and enforces the CSRF handshake on it. */
function gateway(req, res, next) {
  const path = req.path
  if (!path.startsWith('/odata/')) return next()
  if (req.headers[HOP_HEADER] === HOP_SECRET) return next() // the adapter's inner hop
  if (path.startsWith('/odata/v2')) req.headers[HOP_HEADER] = HOP_SECRET

  const override = req.headers['x-http-method']
  const method = (req.method === 'POST' && override ? override : req.method).toUpperCase()
  const isBatch = req.method === 'POST' && /\/\$batch$/.test(path)
  const isWrite = MODIFYING.has(req.method) || MODIFYING.has(method)
  const token = req.headers['x-csrf-token']

  const counted = !req.headers[UNCOUNTED_HEADER]
  const count = (key) => {
    if (counted) stats[key]++
  }
  count('requests')
  if (counted) stats.by_method[method] = (stats.by_method[method] || 0) + 1
  if (path.startsWith('/odata/v2')) count('v2')
  else if (path.startsWith('/odata/v4')) count('v4')
  if (isBatch) count('batch')
  if (isWrite) count('writes')

  if ((req.method === 'GET' || req.method === 'HEAD') && token && token.toLowerCase() === 'fetch') {
    count('csrf_fetch')
    let session = cookie(req, SESSION_COOKIE)
    if (!session || !sessions.has(session)) {
      session = crypto.randomBytes(16).toString('hex')
      sessions.set(session, randomToken())
      res.append('Set-Cookie', `${SESSION_COOKIE}=${session}; Path=/; HttpOnly`)
    }
    res.setHeader('X-CSRF-Token', sessions.get(session))
    return next()
  }

  if (isWrite) {
    const session = cookie(req, SESSION_COOKIE)
    const expected = session && sessions.get(session)
    if (!expected || !token || token !== expected) {
      count('csrf_rejected')
      res.status(403)
      res.setHeader('X-CSRF-Token', 'Required')
      res.setHeader('Content-Type', 'text/plain; charset=utf-8')
      return res.end('CSRF token validation failed')
    }
  }
  next()
}

/** Deletes every row of every entity of the db model (children first). */
async function deleteAllRows() {
  const entities = Object.values(cds.model.definitions).filter(
    (d) => d.kind === 'entity' && !d.query && !d.projection && d['@cds.persistence.skip'] !== true,
  )
  let deleted = 0
  for (const e of entities.reverse()) deleted += (await cds.db.run(cds.ql.DELETE.from(e.name))) || 0
  return deleted
}

function admin() {
  const router = express.Router()
  router.get('/stats', (_req, res) => res.json(stats))
  router.post('/stats/reset', (_req, res) => {
    stats = zeroStats()
    res.status(204).end()
  })
  router.post('/csrf/invalidate', (_req, res) => {
    const invalidated = sessions.size
    sessions.clear()
    res.json({ invalidated })
  })
  router.post('/reset', async (_req, res, next) => {
    try {
      const deleted = await deleteAllRows()
      stats = zeroStats() // CSRF sessions stay valid: a worker's token survives a reset
      res.json({ deleted })
    } catch (e) {
      next(e)
    }
  })
  return router
}

module.exports = async function server(options) {
  const app = express()
  // Loopback only: express' own listen() binds every interface.
  app.listen = function listen(port) {
    return http.createServer(this).listen(port, process.env.HOST || '127.0.0.1')
  }
  app.use('/__admin', admin())
  app.use(gateway)
  // The adapter proxies to `http://localhost:PORT` by default; on a machine
  // where localhost resolves to ::1 first that misses our IPv4-only socket.
  const port = Number(options.port ?? process.env.PORT ?? 0)
  if (port > 0) cds.env.cov2ap = { ...cds.env.cov2ap, target: `http://127.0.0.1:${port}` }
  const server = await cds.server({ ...options, app })
  // Registered after the adapter's own 'listening' handler (which mounts the
  // V2 routes), so this line means both protocols serve. The testkit waits
  // for it.
  cds.once('listening', () => {
    console.log(`[gluefleet-sap-cap] ready on http://127.0.0.1:${server.address().port}`)
  })
  return server
}
