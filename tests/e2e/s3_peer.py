#!/usr/bin/env python3
"""S3 peers for labelgate's tests, with real libraries: moto's S3 server over TLS (a throwaway
CA from ws_peer.py) and a boto3 client that uploads through labelgate as its HTTPS proxy.

  s3_peer.py origin DIR       writes DIR/origin-ca.pem, prints the port, serves S3 until killed
  s3_peer.py put PROXY_PORT LABELGATE_CA PORT KEY FILE
                              creates bucket "labelgate-test", puts FILE as KEY, prints one JSON line:
                              {"ok": bool, "status": int|None, "content_encoding": str|None,
                               "stored_sha256": str|None}
  s3_peer.py multipart PROXY_PORT LABELGATE_CA PORT KEY FILE
                              uploads FILE as KEY with boto3's managed transfer in 5 MiB parts, three
                              at a time (so parts arrive in any order), prints one JSON line:
                              {"ok": bool, "error": str|None, "parts": int, "stored_sha256": str|None}
  s3_peer.py copypart PROXY_PORT LABELGATE_CA PORT KEY SOURCE_KEY
                              a multipart upload of KEY whose only part is UploadPartCopy of
                              SOURCE_KEY; prints {"ok": bool, "error": str|None}
"""
import hashlib, json, os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def origin(directory):
    from ws_peer import make_ca
    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server
    make_ca(directory)
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server("127.0.0.1", 0, app, threaded=True,
                         ssl_context=(os.path.join(directory, "origin-leaf.pem"), os.path.join(directory, "origin-key.pem")))
    print(server.port, flush=True)
    server.serve_forever()


def client(proxy_port, ca, port):
    import boto3
    from botocore.config import Config
    return boto3.client("s3", endpoint_url=f"https://127.0.0.1:{port}", region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing", verify=ca,
                        config=Config(proxies={"https": f"http://127.0.0.1:{proxy_port}"}, retries={"max_attempts": 1},
                                      s3={"addressing_style": "path"}))


def bucket(s3):
    from botocore.exceptions import ClientError
    try:
        s3.create_bucket(Bucket="labelgate-test")
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise


def multipart(proxy_port, ca, port, key, path):
    from boto3.s3.transfer import TransferConfig
    s3 = client(proxy_port, ca, port)
    bucket(s3)
    parts = []
    s3.meta.events.register("before-send.s3.UploadPart", lambda request, **_: parts.append(1))
    out = {"ok": False, "error": None, "parts": 0, "stored_sha256": None}
    config = TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20, max_concurrency=3)
    try:
        s3.upload_file(path, "labelgate-test", key, Config=config)
        out["ok"] = True
        body = s3.get_object(Bucket="labelgate-test", Key=key)["Body"].read()
        out["stored_sha256"] = hashlib.sha256(body).hexdigest()
    except Exception as e:  # S3UploadFailedError wraps the ClientError of the failed request
        out["error"] = str(e)
    out["parts"] = len(parts)
    print(json.dumps(out), flush=True)


def copypart(proxy_port, ca, port, key, source):
    s3 = client(proxy_port, ca, port)
    out = {"ok": False, "error": None}
    try:
        up = s3.create_multipart_upload(Bucket="labelgate-test", Key=key)
        part = s3.upload_part_copy(Bucket="labelgate-test", Key=key, UploadId=up["UploadId"], PartNumber=1,
                                   CopySource={"Bucket": "labelgate-test", "Key": source})
        s3.complete_multipart_upload(Bucket="labelgate-test", Key=key, UploadId=up["UploadId"],
                                     MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["CopyPartResult"]["ETag"]}]})
        out["ok"] = True
    except Exception as e:
        out["error"] = str(e)
    print(json.dumps(out), flush=True)


def put(proxy_port, ca, port, key, path):
    from botocore.exceptions import ClientError
    seen = {}
    s3 = client(proxy_port, ca, port)

    def record(request, **_):
        seen["content_encoding"] = request.headers.get("Content-Encoding")
        if isinstance(seen["content_encoding"], bytes):
            seen["content_encoding"] = seen["content_encoding"].decode()

    s3.meta.events.register("before-send.s3.PutObject", record)
    out = {"ok": False, "status": None, "content_encoding": None, "stored_sha256": None}
    try:
        s3.create_bucket(Bucket="labelgate-test")
    except ClientError as e:
        # An existing bucket is fine; anything else is reported.
        if e.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            out["create_error"] = str(e)
    try:
        with open(path, "rb") as f:
            s3.put_object(Bucket="labelgate-test", Key=key, Body=f)
        out["ok"] = True
        body = s3.get_object(Bucket="labelgate-test", Key=key)["Body"].read()
        out["stored_sha256"] = hashlib.sha256(body).hexdigest()
    except ClientError as e:
        out["status"] = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    out["content_encoding"] = seen.get("content_encoding")
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "origin":
        origin(sys.argv[2])
    else:
        {"put": put, "multipart": multipart, "copypart": copypart}[sys.argv[1]](*sys.argv[2:7])
