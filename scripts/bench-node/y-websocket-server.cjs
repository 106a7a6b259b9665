// The y-websocket baseline of clientful-bench: y-websocket's own server
// (`setupWSConnection` from y-websocket 2.1.0 bin/utils.cjs, wired exactly as its
// bin/server.cjs does, without persistence), listening on an ephemeral port of
// 127.0.0.1. Prints `listening <port>` once bound; exits when stdin closes.
'use strict'
const http = require('http')
const { WebSocketServer } = require('ws')
const { setupWSConnection } = require('y-websocket/bin/utils')

const server = http.createServer((_req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain' })
  res.end('okay')
})
const wss = new WebSocketServer({ noServer: true })
wss.on('connection', setupWSConnection)
server.on('upgrade', (request, socket, head) => {
  wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request))
})
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`)
})
process.stdin.on('end', () => process.exit(0))
process.stdin.resume()
