import t from 'tap'
import { addressGroup } from '../../api/services/address-group.js'

// What a per-address cap (connections, streams) counts as one client. Loopback here has one
// IPv6 address (::1), so the /64 grouping is checked on the function the caps call.
t.test('an IPv6 /64 is one client, however its addresses are written', async (t) => {
  const same = [
    '2001:db8:1:2::1',
    '2001:db8:1:2:ffff:ffff:ffff:ffff',
    '2001:0db8:0001:0002:0000:0000:0000:0abc',
    '2001:DB8:1:2::dead:beef',
    '2001:db8:1:2::7%eth0',
    '2001:db8:1:2:0:0:127.0.0.9',
  ]
  t.same(new Set(same.map(addressGroup)), new Set(['2001:db8:1:2::/64']))
  t.not(addressGroup('2001:db8:1:3::1'), addressGroup('2001:db8:1:2::1'), 'the next /64 is another client')
  t.equal(addressGroup('::1'), '0:0:0:0::/64')
  t.equal(addressGroup('2001:db8::'), '2001:db8:0:0::/64')
  t.equal(addressGroup('::'), '0:0:0:0::/64')
})

t.test('IPv4 addresses are each their own, in either form', async (t) => {
  t.equal(addressGroup('127.0.0.2'), '127.0.0.2')
  t.equal(addressGroup('::ffff:127.0.0.2'), '127.0.0.2', 'a dual-stack listener sees IPv4 in IPv6 form')
  t.equal(addressGroup('::FFFF:127.1.2.3'), '127.1.2.3')
  t.not(addressGroup('127.0.0.2'), addressGroup('127.0.0.3'))
  t.equal(addressGroup('?'), '?', 'not an address: counted as it is')
})
