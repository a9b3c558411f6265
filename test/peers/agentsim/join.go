package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	clusterv1 "open-cluster-management.io/api/cluster/v1"
)

// The agent's half of the ManagedCluster join flow over gRPC (see README "Join flow"): a fresh key and a CSR for the
// agent identity, then waiting, through the sdk-go CSR client's informer, for the hub to approve and sign it. The
// constants are OCM's published names (api: operator/v1 GRPCAuthSigner, cluster/v1 ClusterNameLabelKey and the
// registration subject prefix and group).
const (
	grpcSignerName      = "open-cluster-management.io/grpc"
	clusterNameLabel    = "open-cluster-management.io/cluster-name"
	subjectPrefix       = "system:open-cluster-management:"
	managedClustersO    = "system:open-cluster-management:managed-clusters"
	hubAcceptedCondType = "HubAcceptedManagedCluster"
)

// joinBehaviour holds the join-flow knobs (flags).
type joinBehaviour struct {
	signerName        string        // spec.signerName of the CSR
	agentName         string        // the <agent> part of the certificate CN
	csrWait           time.Duration // bound on waiting for approval and certificate
	expirationSeconds int32         // spec.expirationSeconds; 0 leaves it unset
	certDir           string        // when set, <certDir>/<cluster>/tls.crt and tls.key are written
	statusPatch       bool          // patch ManagedCluster status (Available=True) once the hub sent the cluster
}

// agentSubject is the certificate subject OCM's registration agent requests for gRPC registration.
func agentSubject(cluster, agent string) pkix.Name {
	return pkix.Name{
		CommonName:   subjectPrefix + cluster + ":" + agent,
		Organization: []string{subjectPrefix + cluster, managedClustersO},
	}
}

// csrUsages are the key usages the registration agent asks for: a TLS client certificate.
var csrUsages = []certificatesv1.KeyUsage{
	certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment, certificatesv1.UsageClientAuth,
}

// pendingCSR is one CSR the agent created and whose certificate it waits for.
type pendingCSR struct {
	name    string
	keyPEM  []byte // PKCS#1-style "EC PRIVATE KEY" PEM, as written to tls.key
	subject pkix.Name
	created time.Time
}

// newAgentKeyAndRequest generates a P-256 key and a PEM certificate request for subject.
func newAgentKeyAndRequest(subject pkix.Name) (keyPEM, requestPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	reqDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: subject}, key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: reqDER}), nil
}

// csrCondition returns the first condition of the given type, if any.
func csrCondition(c *certificatesv1.CertificateSigningRequest,
	t certificatesv1.RequestConditionType) (certificatesv1.CertificateSigningRequestCondition, bool) {
	for _, cond := range c.Status.Conditions {
		if cond.Type == t {
			return cond, true
		}
	}
	return certificatesv1.CertificateSigningRequestCondition{}, false
}

func csrConditionSummary(c *certificatesv1.CertificateSigningRequest) []fields {
	out := make([]fields, 0, len(c.Status.Conditions))
	for _, cond := range c.Status.Conditions {
		out = append(out, fields{"type": string(cond.Type), "status": string(cond.Status), "reason": cond.Reason})
	}
	return out
}

// onCSR reports a CSR the hub sent (or, from sdk-go v1.2, the agent's own create) and wakes the certificate wait.
func (r *registrationAgent) onCSR(eventName string, obj any) {
	c, ok := obj.(*certificatesv1.CertificateSigningRequest)
	if !ok {
		return
	}
	r.out.emit(eventName, fields{
		"cluster": r.name, "name": c.Name, "resourceVersion": c.ResourceVersion, "signerName": c.Spec.SignerName,
		"conditions": csrConditionSummary(c), "hasCertificate": len(c.Status.Certificate) > 0,
	})
	select {
	case r.csrChanged <- struct{}{}:
	default:
	}
}

// awaitCertificate waits, bounded by csrWait, until the hub has approved the CSR and put a certificate into its
// status, reading the CSR from the sdk-go CSR client's informer each time that informer reports a change. It emits
// csr-approved once the Approved condition arrives and certificate-received once a certificate that matches the
// private key arrives; a Denied or Failed condition, a bad certificate or the timeout end it with an error line.
func (r *registrationAgent) awaitCertificate(ctx context.Context, informer cache.SharedIndexInformer, p pendingCSR) {
	timer := time.NewTimer(r.beh.join.csrWait)
	defer timer.Stop()
	approvedReported := false
	lastState := "not received from the hub"
	for {
		if obj, exists, err := informer.GetIndexer().GetByKey(p.name); err == nil && exists {
			c, ok := obj.(*certificatesv1.CertificateSigningRequest)
			if !ok {
				r.out.error(r.name, "csr "+p.name, fmt.Errorf("unexpected object %T in the csr informer", obj))
				return
			}
			lastState = "pending"
			for _, bad := range []struct {
				cond  certificatesv1.RequestConditionType
				event string
			}{{certificatesv1.CertificateDenied, "csr-denied"}, {certificatesv1.CertificateFailed, "csr-failed"}} {
				if cond, found := csrCondition(c, bad.cond); found {
					r.out.emit(bad.event, fields{"cluster": r.name, "name": p.name, "reason": cond.Reason,
						"message": cond.Message})
					r.out.error(r.name, "csr "+p.name, fmt.Errorf("the hub set condition %s (reason %q): %s",
						bad.cond, cond.Reason, cond.Message))
					return
				}
			}
			if cond, approved := csrCondition(c, certificatesv1.CertificateApproved); approved {
				lastState = "approved, no certificate yet"
				if !approvedReported {
					approvedReported = true
					r.out.emit("csr-approved", fields{"cluster": r.name, "name": p.name, "reason": cond.Reason,
						"message": cond.Message, "ms": time.Since(p.created).Milliseconds()})
				}
				if len(c.Status.Certificate) > 0 {
					r.takeCertificate(p, c.Status.Certificate)
					return
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			r.out.error(r.name, "csr "+p.name, fmt.Errorf("no approved certificate within --csr-wait %s (state: %s)",
				r.beh.join.csrWait, lastState))
			return
		case <-r.csrChanged:
		}
	}
}

// takeCertificate checks an issued certificate against the private key and the requested subject, writes the pair
// when --cert-dir is set, and emits certificate-received (or an error line when it is unusable).
func (r *registrationAgent) takeCertificate(p pendingCSR, certPEM []byte) {
	if _, err := tls.X509KeyPair(certPEM, p.keyPEM); err != nil {
		r.out.error(r.name, "certificate of csr "+p.name, fmt.Errorf("does not match the agent's private key: %w", err))
		return
	}
	leaf, chainLen, err := firstCertificate(certPEM)
	if err != nil {
		r.out.error(r.name, "certificate of csr "+p.name, err)
		return
	}
	wantO := slices.Sorted(slices.Values(p.subject.Organization))
	gotO := slices.Sorted(slices.Values(leaf.Subject.Organization))
	subjectMatches := leaf.Subject.CommonName == p.subject.CommonName && slices.Equal(wantO, gotO)
	clientAuth := slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	f := fields{
		"cluster": r.name, "name": p.name,
		"commonName": leaf.Subject.CommonName, "organizations": leaf.Subject.Organization,
		"issuer": leaf.Issuer.CommonName, "serial": hex.EncodeToString(leaf.SerialNumber.Bytes()),
		"notBefore": leaf.NotBefore.UTC().Format(time.RFC3339), "notAfter": leaf.NotAfter.UTC().Format(time.RFC3339),
		"subjectMatches": subjectMatches, "clientAuth": clientAuth, "chainLength": chainLen,
		"ms": time.Since(p.created).Milliseconds(),
	}
	if r.beh.join.certDir != "" {
		dir := filepath.Join(r.beh.join.certDir, r.name)
		certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
		err := os.MkdirAll(dir, 0o700)
		if err == nil {
			err = os.WriteFile(keyFile, p.keyPEM, 0o600)
		}
		if err == nil {
			err = os.WriteFile(certFile, certPEM, 0o644)
		}
		if err != nil {
			r.out.error(r.name, "write certificate", err)
		} else {
			f["certFile"], f["keyFile"] = certFile, keyFile
		}
	}
	r.out.emit("certificate-received", f)
	if !subjectMatches {
		r.out.error(r.name, "certificate of csr "+p.name, fmt.Errorf("subject CN=%q O=%q, requested CN=%q O=%q",
			leaf.Subject.CommonName, leaf.Subject.Organization, p.subject.CommonName, p.subject.Organization))
	}
	if time.Now().After(leaf.NotAfter) {
		r.out.error(r.name, "certificate of csr "+p.name, fmt.Errorf("expired at %s", leaf.NotAfter.UTC()))
	}
}

// firstCertificate parses the leaf (first CERTIFICATE block) of a PEM bundle and counts the blocks.
func firstCertificate(data []byte) (*x509.Certificate, int, error) {
	var leaf *x509.Certificate
	n := 0
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		n++
		if leaf == nil {
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, 0, fmt.Errorf("parse certificate: %w", err)
			}
			leaf = c
		}
	}
	if leaf == nil {
		return nil, 0, errors.New("status.certificate holds no PEM CERTIFICATE block")
	}
	return leaf, n, nil
}

// clusterConditionEvents maps the ManagedCluster conditions whose arrival from the hub is reported to event names.
var clusterConditionEvents = []struct{ condType, event string }{
	{hubAcceptedCondType, "managedcluster-accepted"},
	{clusterv1.ManagedClusterConditionJoined, "managedcluster-joined"},
	{clusterv1.ManagedClusterConditionAvailable, "managedcluster-available"},
}

// clusterConditionTracker remembers which of those conditions were True in the last ManagedCluster from the hub,
// so that each change to True is reported once (and again after it left True).
type clusterConditionTracker struct {
	mu      sync.Mutex
	wasTrue map[string]bool
}

func (t *clusterConditionTracker) observe(r *registrationAgent, mc *clusterv1.ManagedCluster) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.wasTrue == nil {
		t.wasTrue = map[string]bool{}
	}
	for _, ce := range clusterConditionEvents {
		cond := meta.FindStatusCondition(mc.Status.Conditions, ce.condType)
		isTrue := cond != nil && cond.Status == metav1.ConditionTrue
		if isTrue && !t.wasTrue[ce.condType] {
			r.out.emit(ce.event, fields{
				"cluster": r.name, "name": mc.Name, "resourceVersion": mc.ResourceVersion,
				"condition": ce.condType, "reason": cond.Reason, "message": cond.Message,
				"lastTransitionTime": cond.LastTransitionTime.UTC().Format(time.RFC3339),
			})
		}
		t.wasTrue[ce.condType] = isTrue
	}
}
