package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	clusterv1 "open-cluster-management.io/api/cluster/v1"

	"open-cluster-management.io/sdk-go/pkg/cloudevents/generic/types"
)

// The hub's half of the join flow, driven by stdin commands: approving (or denying) an agent's CSR, signing it with
// a test CA generated at start, and setting ManagedCluster conditions. Each step is one stored change sent to the
// agent as a spec update_request, as the real hub's informers would (approval and signing are two updates, like
// OCM's approving controller followed by its signing controller).

const clusterNameLabel = "open-cluster-management.io/cluster-name"

// testCA is a throw-away signing CA, made fresh in every refserver process.
type testCA struct {
	key     *ecdsa.PrivateKey
	cert    *x509.Certificate
	certPEM []byte
}

func newTestCA() (*testCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "agentsim-refserver-ca"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &testCA{key: key, cert: cert, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

func randomSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// sign issues a certificate for the CSR's request: the request's subject and public key, the CSR's usages, valid
// for spec.expirationSeconds (or ttl when unset). It returns the leaf in PEM.
func (ca *testCA) sign(c *certificatesv1.CertificateSigningRequest, ttl time.Duration) ([]byte, *x509.Certificate,
	error) {
	block, _ := pem.Decode(c.Spec.Request)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, nil, errors.New("spec.request is not a PEM CERTIFICATE REQUEST")
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("parse spec.request: %w", err)
	}
	if err := req.CheckSignature(); err != nil {
		return nil, nil, fmt.Errorf("spec.request signature: %w", err)
	}
	if c.Spec.ExpirationSeconds != nil {
		ttl = time.Duration(*c.Spec.ExpirationSeconds) * time.Second
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      req.Subject,
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(ttl),
	}
	for _, u := range c.Spec.Usages {
		switch u {
		case certificatesv1.UsageDigitalSignature:
			tmpl.KeyUsage |= x509.KeyUsageDigitalSignature
		case certificatesv1.UsageKeyEncipherment:
			tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
		case certificatesv1.UsageClientAuth:
			tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
		case certificatesv1.UsageServerAuth:
			tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
		default:
			return nil, nil, fmt.Errorf("usage %q is not supported by the test CA", u)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, req.PublicKey, ca.key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), cert, nil
}

// requestSubject returns the subject of a CSR's PEM request, or empty values when it cannot be parsed.
func requestSubject(c *certificatesv1.CertificateSigningRequest) (string, []string) {
	block, _ := pem.Decode(c.Spec.Request)
	if block == nil {
		return "", nil
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return "", nil
	}
	return req.Subject.CommonName, req.Subject.Organization
}

func hasCSRCondition(c *certificatesv1.CertificateSigningRequest, t certificatesv1.RequestConditionType) bool {
	for _, cond := range c.Status.Conditions {
		if cond.Type == t {
			return true
		}
	}
	return false
}

// selectCSRs returns copies of the named CSR, or of every CSR of the cluster that matches pick, sorted by name.
func (r *registrationServices) selectCSRs(cmd command,
	pick func(*certificatesv1.CertificateSigningRequest) bool) ([]*certificatesv1.CertificateSigningRequest, error) {
	if cmd.Name != "" {
		c, ok := r.csrs.get("", cmd.Name)
		if !ok {
			return nil, fmt.Errorf("no csr %q", cmd.Name)
		}
		return []*certificatesv1.CertificateSigningRequest{c.DeepCopy()}, nil
	}
	if cmd.Cluster == "" {
		return nil, errors.New("needs \"name\" or \"cluster\"")
	}
	r.csrs.mu.Lock()
	var out []*certificatesv1.CertificateSigningRequest
	for _, c := range r.csrs.objs {
		if c.Labels[clusterNameLabel] == cmd.Cluster && pick(c) {
			out = append(out, c.DeepCopy())
		}
	}
	r.csrs.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if len(out) == 0 {
		return nil, fmt.Errorf("no matching csr for cluster %q", cmd.Cluster)
	}
	return out, nil
}

func pending(c *certificatesv1.CertificateSigningRequest) bool {
	return !hasCSRCondition(c, certificatesv1.CertificateApproved) && !hasCSRCondition(c, certificatesv1.CertificateDenied)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// updateCSR stores a changed CSR and sends it to the agent.
func (r *registrationServices) updateCSR(ctx context.Context,
	c *certificatesv1.CertificateSigningRequest) (*certificatesv1.CertificateSigningRequest, error) {
	stored, err := r.csrs.store(c)
	if err != nil {
		return nil, err
	}
	return stored, r.csrs.send(ctx, types.UpdateRequestAction, stored)
}

// approveCSRs handles approve-csr: the Approved condition, then (unless sign is false) the certificate.
func (r *registrationServices) approveCSRs(ctx context.Context, cmd command) fields {
	csrs, err := r.selectCSRs(cmd, pending)
	if err != nil {
		return fields{"ok": false, "error": "approve-csr: " + err.Error()}
	}
	results := []fields{}
	for _, c := range csrs {
		if hasCSRCondition(c, certificatesv1.CertificateDenied) {
			return fields{"ok": false, "error": fmt.Sprintf("approve-csr: csr %s is denied", c.Name)}
		}
		if !hasCSRCondition(c, certificatesv1.CertificateApproved) {
			c.Status.Conditions = append(c.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
				Type: certificatesv1.CertificateApproved, Status: "True",
				Reason:         orDefault(cmd.Reason, "AgentSimRefServerApproved"),
				Message:        orDefault(cmd.Message, "approved by an agentsim refserver command"),
				LastUpdateTime: metav1.Now(), LastTransitionTime: metav1.Now(),
			})
			stored, err := r.updateCSR(ctx, c)
			if err != nil {
				return fields{"ok": false, "error": fmt.Sprintf("approve-csr %s: %v", c.Name, err)}
			}
			r.csrs.out.emit("csr-approved", fields{"cluster": stored.Labels[clusterNameLabel], "name": stored.Name,
				"resourceVersion": stored.ResourceVersion})
			c = stored.DeepCopy()
		}
		res := fields{"name": c.Name}
		if len(c.Status.Certificate) > 0 {
			res["alreadySigned"] = true
		} else if cmd.Sign == nil || *cmd.Sign {
			signed, err := r.signOne(ctx, c)
			if err != nil {
				return fields{"ok": false, "error": fmt.Sprintf("approve-csr %s: sign: %v", c.Name, err)}
			}
			res = signed
		}
		results = append(results, res)
	}
	return fields{"ok": true, "csrs": results}
}

// signCSRs handles sign-csr: certificates for approved CSRs that have none.
func (r *registrationServices) signCSRs(ctx context.Context, cmd command) fields {
	csrs, err := r.selectCSRs(cmd, func(c *certificatesv1.CertificateSigningRequest) bool {
		return hasCSRCondition(c, certificatesv1.CertificateApproved) && len(c.Status.Certificate) == 0
	})
	if err != nil {
		return fields{"ok": false, "error": "sign-csr: " + err.Error()}
	}
	results := []fields{}
	for _, c := range csrs {
		if !hasCSRCondition(c, certificatesv1.CertificateApproved) || len(c.Status.Certificate) > 0 {
			return fields{"ok": false, "error": fmt.Sprintf("sign-csr: csr %s is not approved or already signed",
				c.Name)}
		}
		signed, err := r.signOne(ctx, c)
		if err != nil {
			return fields{"ok": false, "error": fmt.Sprintf("sign-csr %s: %v", c.Name, err)}
		}
		results = append(results, signed)
	}
	return fields{"ok": true, "csrs": results}
}

func (r *registrationServices) signOne(ctx context.Context, c *certificatesv1.CertificateSigningRequest) (fields, error) {
	certPEM, cert, err := r.ca.sign(c, r.certTTL)
	if err != nil {
		return nil, err
	}
	c.Status.Certificate = certPEM
	stored, err := r.updateCSR(ctx, c)
	if err != nil {
		return nil, err
	}
	f := fields{"cluster": stored.Labels[clusterNameLabel], "name": stored.Name,
		"resourceVersion": stored.ResourceVersion, "commonName": cert.Subject.CommonName,
		"organizations": cert.Subject.Organization, "issuer": cert.Issuer.CommonName,
		"serial":   hex.EncodeToString(cert.SerialNumber.Bytes()),
		"notAfter": cert.NotAfter.UTC().Format(time.RFC3339)}
	r.csrs.out.emit("csr-signed", f)
	return f, nil
}

// denyCSRs handles deny-csr: the Denied condition on pending CSRs.
func (r *registrationServices) denyCSRs(ctx context.Context, cmd command) fields {
	csrs, err := r.selectCSRs(cmd, pending)
	if err != nil {
		return fields{"ok": false, "error": "deny-csr: " + err.Error()}
	}
	names := []string{}
	for _, c := range csrs {
		c.Status.Conditions = append(c.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
			Type: certificatesv1.CertificateDenied, Status: "True",
			Reason:         orDefault(cmd.Reason, "AgentSimRefServerDenied"),
			Message:        orDefault(cmd.Message, "denied by an agentsim refserver command"),
			LastUpdateTime: metav1.Now(), LastTransitionTime: metav1.Now(),
		})
		stored, err := r.updateCSR(ctx, c)
		if err != nil {
			return fields{"ok": false, "error": fmt.Sprintf("deny-csr %s: %v", c.Name, err)}
		}
		r.csrs.out.emit("csr-denied", fields{"cluster": stored.Labels[clusterNameLabel], "name": stored.Name})
		names = append(names, stored.Name)
	}
	return fields{"ok": true, "names": names}
}

// setClusterConditions handles set-cluster-conditions: the given conditions are merged by type into the stored
// ManagedCluster's status (a changed status moves lastTransitionTime), then the cluster is sent to the agent.
func (r *registrationServices) setClusterConditions(ctx context.Context, cmd command) fields {
	if cmd.Cluster == "" || len(cmd.Conditions) == 0 {
		return fields{"ok": false, "error": "set-cluster-conditions needs \"cluster\" and \"conditions\""}
	}
	last, ok := r.clusters.get("", cmd.Cluster)
	if !ok {
		return fields{"ok": false, "error": apierrors.NewNotFound(clusterv1.Resource("managedclusters"),
			cmd.Cluster).Error()}
	}
	mc := last.DeepCopy()
	for _, in := range cmd.Conditions {
		switch metav1.ConditionStatus(in.Status) {
		case metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionUnknown:
		default:
			return fields{"ok": false, "error": fmt.Sprintf("condition %q: status must be True, False or Unknown",
				in.Type)}
		}
		if in.Type == "" {
			return fields{"ok": false, "error": "a condition needs \"type\""}
		}
		meta.SetStatusCondition(&mc.Status.Conditions, metav1.Condition{
			Type: in.Type, Status: metav1.ConditionStatus(in.Status), Reason: orDefault(in.Reason, "AgentSimRefServer"),
			Message: in.Message,
		})
	}
	if cmd.HubAcceptsClient != nil {
		mc.Spec.HubAcceptsClient = *cmd.HubAcceptsClient
	}
	stored, err := r.clusters.store(mc)
	if err != nil {
		return fields{"ok": false, "error": err.Error()}
	}
	if err := r.clusters.send(ctx, types.UpdateRequestAction, stored); err != nil {
		return fields{"ok": false, "error": err.Error()}
	}
	f := fields{"cluster": stored.Name, "resourceVersion": stored.ResourceVersion,
		"hubAcceptsClient": stored.Spec.HubAcceptsClient, "conditions": summary(stored.Status.Conditions)}
	r.clusters.out.emit("managedcluster-conditions-set", f)
	f["ok"] = true
	return f
}
