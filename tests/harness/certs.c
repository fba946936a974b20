/* SPDX-License-Identifier: MIT */
/* Test certificates, made with OpenSSL's API so the suite needs no openssl binary and no
 * files in the repository that would expire: see t.h, t_certs_make(). */
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "t.h"

struct ident {
    EVP_PKEY *key;
    X509 *cert;
};

static void
write_pem(const char *dir, const char *name, const struct ident *id)
{
    char path[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s.crt", dir, name);
    f = fopen(path, "w");
    T_ASSERT(f && PEM_write_X509(f, id->cert) == 1);
    T_ASSERT(fclose(f) == 0);
    snprintf(path, sizeof(path), "%s/%s.key", dir, name);
    f = fopen(path, "w");
    T_ASSERT(f && PEM_write_PrivateKey(f, id->key, NULL, NULL, 0, NULL, NULL) == 1);
    T_ASSERT(fclose(f) == 0);
}

static void
add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;

    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    T_ASSERT(ext != NULL);
    T_ASSERT(X509_add_ext(cert, ext, -1) == 1);
    X509_EXTENSION_free(ext);
}

/* A P-256 key and a certificate for cn, signed by ca (self-signed when ca is NULL), valid
 * from 'from' to 'to' days from now; san: subjectAltName, or NULL. */
static struct ident
make(const char *cn, const struct ident *ca, const char *san, long from, long to, long serial)
{
    struct ident id;
    X509_NAME *name;

    id.key = EVP_EC_gen("P-256");
    id.cert = X509_new();
    T_ASSERT(id.key && id.cert);
    X509_set_version(id.cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(id.cert), serial);
    X509_gmtime_adj(X509_getm_notBefore(id.cert), from * 86400);
    X509_gmtime_adj(X509_getm_notAfter(id.cert), to * 86400);
    X509_set_pubkey(id.cert, id.key);
    name = X509_get_subject_name(id.cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(id.cert, ca ? X509_get_subject_name(ca->cert) : name);
    if (!ca) {
        add_ext(id.cert, id.cert, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(id.cert, id.cert, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_ext(id.cert, ca->cert, NID_basic_constraints, "critical,CA:FALSE");
    }
    if (san)
        add_ext(id.cert, ca ? ca->cert : id.cert, NID_subject_alt_name, san);
    T_ASSERT(X509_sign(id.cert, ca ? ca->key : id.key, EVP_sha256()) > 0);
    return id;
}

static void
drop(struct ident *id)
{
    X509_free(id->cert);
    EVP_PKEY_free(id->key);
}

void
t_certs_make(const char *dir)
{
    struct ident ca = make("slabmq test CA", NULL, NULL, -1, 30, 1);
    struct ident other = make("another CA", NULL, NULL, -1, 30, 2);
    struct ident server = make("localhost", &ca, "DNS:localhost,IP:127.0.0.1", -1, 30, 3);
    struct ident client = make("test client", &ca, NULL, -1, 30, 4);
    struct ident stranger = make("stranger", &other, NULL, -1, 30, 5);
    struct ident expired = make("localhost", &ca, "DNS:localhost,IP:127.0.0.1", -30, -1, 6);
    struct ident server2 = make("localhost", &other, "DNS:localhost,IP:127.0.0.1", -1, 30, 7);

    write_pem(dir, "ca", &ca);
    write_pem(dir, "other-ca", &other);
    write_pem(dir, "server", &server);
    write_pem(dir, "client", &client);
    write_pem(dir, "stranger", &stranger);
    write_pem(dir, "expired", &expired);
    write_pem(dir, "server-other", &server2);
    drop(&ca);
    drop(&other);
    drop(&server);
    drop(&client);
    drop(&stranger);
    drop(&expired);
    drop(&server2);
}
