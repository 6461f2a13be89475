#!/usr/bin/env python3
"""WebSocket peers for labelgate's tests, with real libraries: an origin (the `websockets`
server, over TLS with a throwaway CA made by `cryptography`) and a client (`websocket-client`,
through labelgate as an HTTP proxy, trusting labelgate's CA).

  ws_peer.py origin DIR          writes DIR/origin-ca.pem, prints the port, answers each message
                                 with "stored <sha256 of the message bytes>"
  ws_peer.py client PROXY_PORT LABELGATE_CA URL MODE FILE
                                 MODE: binary | base64-text | json-text; prints one JSON line:
                                 {"reply": ..., "close_code": ...}
"""
import asyncio, base64, datetime, hashlib, ipaddress, json, os, ssl, sys


def make_ca(directory):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime(2026, 1, 1)
    later = now + datetime.timedelta(days=3650)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ws test origin CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now).not_valid_after(later)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2).not_valid_before(now).not_valid_after(later)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = lambda c: c.public_bytes(serialization.Encoding.PEM)
    with open(os.path.join(directory, "origin-ca.pem"), "wb") as f:
        f.write(pem(ca))
    with open(os.path.join(directory, "origin-leaf.pem"), "wb") as f:
        f.write(pem(leaf))
    with open(os.path.join(directory, "origin-key.pem"), "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


async def origin(directory):
    import websockets
    make_ca(directory)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.path.join(directory, "origin-leaf.pem"), os.path.join(directory, "origin-key.pem"))

    async def handler(ws):
        async for message in ws:
            data = message.encode() if isinstance(message, str) else message
            await ws.send("stored " + hashlib.sha256(data).hexdigest())

    async with websockets.serve(handler, "127.0.0.1", 0, ssl=context, max_size=None, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        print(port, flush=True)
        await asyncio.Future()


def client(proxy_port, ca, url, mode, path):
    import websocket
    data = open(path, "rb").read()
    ws = websocket.create_connection(url, http_proxy_host="127.0.0.1", http_proxy_port=int(proxy_port), proxy_type="http",
                                     sslopt={"ca_certs": ca}, timeout=20, enable_multithread=False)
    if mode == "binary":
        ws.send_binary(data)
    elif mode == "base64-text":
        ws.send(base64.b64encode(data).decode())
    else:
        ws.send(json.dumps({"type": "upload", "name": "q3.docx", "data": base64.b64encode(data).decode()}))
    out = {"reply": None, "close_code": None}
    try:
        opcode, payload = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            out["close_code"] = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
        else:
            out["reply"] = payload.decode(errors="replace")
    except websocket.WebSocketConnectionClosedException:
        out["close_code"] = "closed"
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "origin":
        asyncio.run(origin(sys.argv[2]))
    else:
        client(*sys.argv[2:7])
